"""``python -m services.alerts --config FILE``."""

import sys

from services.alerts.service import AlertsService
from services.common.runtime import main

if __name__ == "__main__":
    sys.exit(main("alerts", AlertsService))
