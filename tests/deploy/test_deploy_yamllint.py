"""Every YAML file under deploy/ passes yamllint with deploy/.yamllint."""

from __future__ import annotations

from pathlib import Path

from deploy_checks import DEPLOY
from yamllint import linter
from yamllint.config import YamlLintConfig


def config() -> YamlLintConfig:
    return YamlLintConfig(file=str(DEPLOY / ".yamllint"))


def yaml_files(conf: YamlLintConfig) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and conf.is_yaml_file(str(p)))


def test_deploy_yaml_is_lint_free() -> None:
    conf = config()
    files = yaml_files(conf)
    assert len(files) >= 20
    problems = [f"{path.relative_to(DEPLOY)}:{p.line}:{p.column}: {p.desc} ({p.rule})"
                for path in files for p in linter.run(path.read_text(), conf, str(path))]
    assert not problems, "\n".join(problems)


def test_the_config_catches_problems() -> None:
    text = "a: 1\na: 2\nb: yes\nc: [1,2]\n" + "d: " + "x" * 130 + "\n"
    rules = {p.rule for p in linter.run(text, config())}
    assert {"key-duplicates", "truthy", "commas", "line-length"} <= rules
