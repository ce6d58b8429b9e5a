"""The WSGI entry point (gunicorn, `flask --app wsgi run`)."""

import os
import sys

from app import create_app
from app.services.accounts import setup_code

# FOYER_INSTANCE_PATH moves instance/ (database, keys, the emulator's CA and state) elsewhere.
app = create_app(instance_path=os.environ.get("FOYER_INSTANCE_PATH") or None)

# A web server starting (gunicorn imports this module, `flask run` too) prints the one-time setup code
# while Foyer has no admin; other `flask` commands (db upgrade, worker, …) import it without serving.
if os.environ.get("FLASK_RUN_FROM_CLI") != "true" or "run" in sys.argv[1:]:
    setup_code.announce(app)
