"""``python -m services.tracking --config FILE``."""

import sys

from services.common.runtime import main
from services.tracking.service import TrackingService

if __name__ == "__main__":
    sys.exit(main("tracking", TrackingService))
