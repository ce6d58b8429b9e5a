import os

from app import create_app

# FOYER_INSTANCE_PATH moves instance/ (database, keys, the emulator's CA and state) elsewhere.
app = create_app(instance_path=os.environ.get("FOYER_INSTANCE_PATH") or None)
