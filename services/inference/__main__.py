"""``python -m services.inference --config FILE``."""

import sys

from services.common.runtime import main
from services.inference.service import InferenceService

if __name__ == "__main__":
    sys.exit(main("inference", InferenceService))
