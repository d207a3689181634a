"""The README stays a short page for users, and every relative link in the docs resolves."""

import re
from pathlib import Path

import pytest
from conftest import ROOT

PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "experiments").rglob("*.md")),
]  # notes, history, result tables
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    """The targets of a page's markdown links that point inside the repository."""
    return [
        target
        for target in LINK.findall(page.read_text())
        if not target.startswith(("http:", "https:", "mailto:", "#"))
    ]


def test_the_readme_has_at_most_300_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, len(lines)


def test_the_docs_the_readme_moved_out_exist_and_are_listed():
    index = (ROOT / "docs" / "README.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md")
    assert len(pages) >= 10, pages
    assert [p for p in pages if f"]({p})" not in index] == []


def test_link_finder_sees_relative_links_only(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "[a](docs/cli.md) [b](https://x.org) [c](#top) [d](mailto:a@b) [`e`](../f/#anchor)\n"
    )
    assert relative_links(page) == ["docs/cli.md", "../f/#anchor"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    links = relative_links(page)
    targets = {t: (page.parent / t.split("#", 1)[0]).resolve() for t in links}
    broken = [
        t for t, path in targets.items() if not path.exists() or not path.is_relative_to(ROOT)
    ]
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"


def test_the_configuration_reference_matches_the_code():
    """Every config field is in the reference's YAML, with its default; every registered
    fusion is in its table with its options and their defaults; every image encoder and
    recurrent unit in its own."""
    import dataclasses

    import yaml

    from vqa.config import MODEL_SECTIONS, ModelConfig, TrainConfig
    from vqa.models.fusions import FUSIONS, fusion_options

    text = (ROOT / "docs" / "configuration.md").read_text()
    reference = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert list(reference) == [*MODEL_SECTIONS, "train"]
    sections = [(name, ModelConfig, keys) for name, keys in MODEL_SECTIONS.items()]
    sections.append(("train", TrainConfig, [f.name for f in dataclasses.fields(TrainConfig)]))
    for section, cls, keys in sections:
        fields = {name: getattr(cls(), name) for name in keys}
        documented = reference[section]
        assert list(documented) == list(fields), section
        for name, default in fields.items():
            value = documented[name]
            if name == "fusion_options":
                value = tuple(sorted(value.items()))
            elif isinstance(default, tuple):
                value = tuple(value)
            assert value == default, f"{section}.{name}"
    table = text.split("## Fusions", 1)[1]
    for name, cls in FUSIONS.items():
        if name.startswith("test_"):
            continue  # registered by the tests
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {cls.reads} |" in row, name
        for option, default in fusion_options(cls).items():
            assert f"`{option}: {default}`" in row, (name, option)
    from vqa.models.image_encoders import IMAGE_ENCODERS

    table = text.split("## Image encoders", 1)[1].split("\n## ", 1)[0]
    for name, encoder in IMAGE_ENCODERS.items():
        if name.startswith("test_"):
            continue  # registered by the tests
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        runs = "per question" if encoder.per_question else "once per image"
        assert f"| {runs}" in row, name
    from vqa.models.recurrent import RECURRENT

    table = text.split("## Recurrent units", 1)[1].split("\n## ", 1)[0]
    for name, unit in RECURRENT.items():
        if name.startswith("test_"):
            continue  # registered by the tests
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        for kind in (unit.layer, unit.cell):  # Keras' own by its public name
            where = "keras.layers" if kind.__module__.startswith("keras") else kind.__module__
            assert f"`{where}.{kind.__name__}`" in row, name
        assert f"| {unit.states}" in row, name
    from vqa.features.backbones import BACKBONES

    section = text.split("## Image encoders", 1)[1].split("\n## ", 1)[0]
    for name in BACKBONES:
        if not name.startswith("test_"):  # registered by the tests
            assert f"`{name}`" in section, name
