"""Built-in Jinja2 templates of lbroute (data; see renderer.templating)."""
