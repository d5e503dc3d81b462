# JupyterHub serving the app to anonymous visitors on one machine: each visitor gets a server of their own (started
# from the notebooks' folder, with the app's settings applied as on Binder) whose default URL is the app rendered by
# Voilà; idle servers are culled; at most BEAR_HUB_SERVERS run at once and the next visitor gets a friendly "busy"
# page that tries again by itself. Run it from the checkout: `deploy/jupyterhub/run` (README: "More visitors than
# one machine holds"); deploy/jupyterhub/values.yaml is the same configuration for Kubernetes.
#
# The numbers come from the environment, with these defaults:
#   BEAR_HUB_IP, BEAR_HUB_PORT   where visitors connect (127.0.0.1:8000; the proxy's API and the hub take the next
#                                two ports, on 127.0.0.1)
#   BEAR_HUB_SERVERS             most visitor servers at once, starting ones included (20: ~350 MB each)
#   BEAR_HUB_IDLE                seconds without activity before a visitor's server ends, open page or not
#                                (settings.ini's [app] idle_timeout, as for a page of `bear-app`)
#   BEAR_HUB_CHECK               seconds between the hub's checks for activity, idle servers and ended ones (30)
#   BEAR_HUB_RETRY               seconds before the busy page asks again (15)
#   BEAR_HUB_STATE               the hub's database, cookie secret and the visitors' home folders (deploy/jupyterhub/state)
# The app's own settings (settings.ini, BEAR_SETTINGS, BEAR_LOG, BEAR_DATA) reach every visitor's server unchanged.
import os, sys
from pathlib import Path
from bear_app.serve import app_settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
env = lambda name, default: os.environ.get(f'BEAR_HUB_{name}', default)
IP, PORT = env('IP', '127.0.0.1'), int(env('PORT', 8000))
IDLE, CHECK = int(env('IDLE', app_settings()['idle_timeout'])), int(env('CHECK', 30))
STATE = Path(env('STATE', HERE/'state')).resolve()
STATE.mkdir(parents=True, exist_ok=True)

# Where visitors connect, and the hub's own state
c.JupyterHub.ip, c.JupyterHub.port = IP, PORT  # noqa: F821 (`c` is the configuration object JupyterHub passes)
c.ConfigurableHTTPProxy.api_url = f'http://127.0.0.1:{PORT + 1}'
c.JupyterHub.hub_ip, c.JupyterHub.hub_port = '127.0.0.1', PORT + 2
c.JupyterHub.db_url = f'sqlite:///{STATE}/jupyterhub.sqlite'
c.JupyterHub.cookie_secret_file = str(STATE/'jupyterhub_cookie_secret')
c.ConfigurableHTTPProxy.pid_file = str(STATE/'jupyterhub-proxy.pid')
local_proxy = HERE/'node_modules'/'.bin'/'configurable-http-proxy'   # `npm ci` in this folder puts it there
c.ConfigurableHTTPProxy.command = [str(local_proxy) if local_proxy.exists() else 'configurable-http-proxy']

# Anonymous visitors: each browser gets a new temporary user on its first visit. Its first page (templates/home.html)
# starts the visitor's server from a script: a plain GET (a link preview, a bot) starts none.
c.JupyterHub.authenticator_class = 'tmp'
c.Authenticator.allow_all = True
c.JupyterHub.redirect_to_server = False

# One server per visitor, run as the hub's own account, its home in a temporary folder. Its default URL is the app;
# binder/ holds the Jupyter server configuration Binder's image installs (bear_app.serve.app_config(server=True):
# upload limit, kernel culling, no tracebacks, the locked `bear` template), share/jupyter the template. The server's
# root is the notebooks' folder: its file API shows visitors no logs/, models/ or settings.ini (on Kubernetes each
# visitor's pod holds its own files, and the root is the repository's, as on Binder). One visitor per server, only
# Voila (no JupyterLab, no terminals), and a server whose page was closed (its kernel ended) ends by itself a minute
# or two later, freeing its place: so no kernel is warmed in advance (pool_size=0), as one would keep it running.
c.JupyterHub.spawner_class = 'simple'
c.SimpleLocalProcessSpawner.home_dir_template = str(STATE/'homes'/'{username}')
c.Spawner.cmd = [sys.executable, '-m', 'jupyterhub.singleuser']
c.Spawner.notebook_dir = str(REPO/'nbs')
c.Spawner.default_url = '/voila/render/app.ipynb'
c.Spawner.args = ['--BearKernelManager.pool_size=0', '--BearKernelManager.pool_path=',
                  *(f'--ServerApp.jpserver_extensions={x}=False'
                    for x in ('jupyterlab', 'notebook_shim', 'jupyter_lsp', 'jupyter_server_terminals')),
                  '--ServerApp.terminals_enabled=False', '--ServerApp.shutdown_no_activity_timeout=60',
                  *(['--allow-root'] if os.geteuid() == 0 else [])]
c.Spawner.env_keep = ['PATH', 'PYTHONPATH', 'VIRTUAL_ENV', 'LANG', 'LC_ALL',
                      'BEAR_SETTINGS', 'BEAR_LOG', 'BEAR_DATA', 'OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE']
c.Spawner.environment = {'JUPYTER_CONFIG_PATH': str(REPO/'binder'), 'JUPYTER_PATH': str(REPO/'share'/'jupyter'),
                         'JUPYTERHUB_ACTIVITY_INTERVAL': str(CHECK)}       # how often a server reports activity
c.Spawner.start_timeout, c.Spawner.http_timeout = 120, 90   # a busy machine starts servers slowly
c.Spawner.poll_interval = CHECK                      # how often the hub notices a server that ended by itself
c.JupyterHub.last_activity_interval = CHECK          # how often the hub reads the proxy's activity
c.JupyterHub.implicit_spawn_seconds = 1              # a visitor back on an ended server's page gets a new one

# A hub-wide cap: the next visitor gets templates/error.html's busy page (HTTP 429), which asks again by itself
c.JupyterHub.active_server_limit = int(env('SERVERS', 20))
c.JupyterHub.template_paths = [str(HERE/'templates')]
c.JupyterHub.template_vars = {'retry_seconds': int(env('RETRY', 15)), 'app_title': app_settings()['title']}

# Idle culling: a visitor's server ends after IDLE seconds without activity, and its temporary user with it (a page
# of that user's then gets templates/error.html's "gone" page, which opens the app again)
c.JupyterHub.services = [{'name': 'idle-culler',
                          'command': [sys.executable, '-m', 'jupyterhub_idle_culler', f'--timeout={IDLE}',
                                      f'--cull-every={CHECK}', '--cull-users=True']}]
c.JupyterHub.load_roles = [{'name': 'idle-culler', 'services': ['idle-culler'],
                            'scopes': ['list:users', 'read:users:activity', 'read:servers', 'delete:servers', 'admin:users']}]
