# The app's settings for the Jupyter server that hosts Voila on Binder (or JupyterHub): binder/postBuild copies this
# file to $PREFIX/etc/jupyter/, where the server reads its configuration (jupyter_server_config.d/ is read only for
# enabling extensions). The values come from settings.ini's [app] section, through bear_app.serve.app_config:
# visitor cap, upload limit, idle culling, no tracebacks, no MathJax from a CDN, gzip, the locked `bear` template.
from bear_app.serve import app_config

c.merge(app_config(server=True))  # noqa: F821 (`c` is the configuration object Jupyter passes to this file)
