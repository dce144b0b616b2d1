"""``python -m services.sync --config FILE``."""

import sys

from services.common.runtime import main
from services.sync.service import SyncService

if __name__ == "__main__":
    sys.exit(main("sync", SyncService))
