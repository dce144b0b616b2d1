"""``python -m services.analytics --config FILE``."""

import sys

from services.analytics.service import AnalyticsService
from services.common.runtime import main

if __name__ == "__main__":
    sys.exit(main("analytics", AnalyticsService))
