"""lbroute's ground floor: the API model every other package stands on.

The vocabulary (group, version, kinds, annotation keys), the typed objects read from
Kubernetes dicts once at the boundary, the errors and problems they report, and the
reading of manifest files. Nothing here renders, talks to Kubernetes or to the kernel.
"""
