"""``RVA_<SECTION>_<FIELD>_FILE``: a secret read from a mounted file, winning over the plain variable."""

from pathlib import Path

import pytest

from rva.config import parse_config
from rva.errors import ConfigError
from services.common.config import apply_env

CFG = parse_config({"cameras": [{"id": "c", "source": {"type": "file", "path": "x.mp4"}}]})


def test_a_value_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("rvak_abc_from-file\n")
    out = apply_env(CFG, {"RVA_SYNC_API_KEY": "from-env", "RVA_SYNC_API_KEY_FILE": str(secret)})
    assert out.services.sync.api_key == "rvak_abc_from-file"


def test_an_unreadable_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RVA_SYNC_API_KEY_FILE: cannot read"):
        apply_env(CFG, {"RVA_SYNC_API_KEY_FILE": str(tmp_path / "missing")})
