"""``python -m services.decode --config FILE``."""

import sys

from services.common.runtime import main
from services.decode.service import DecodeService

if __name__ == "__main__":
    sys.exit(main("decode", DecodeService))
