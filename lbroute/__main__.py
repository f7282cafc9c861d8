from lbroute.cli import main

main()
