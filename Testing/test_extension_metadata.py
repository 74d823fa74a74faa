"""The Extensions Index entry and the CMake metadata it relies on: what the Extension Manager shows must exist."""
import json
import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared" / "slicer" / "slicer-extension-catalog-entry-schema-v1.0.1.json"


def _cmakeMetadata():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    values = dict(re.findall(r'^set\((EXTENSION_\w+) "([^"]*)"\)', text, flags=re.MULTILINE))
    values["project"] = re.search(r"^project\((\w+)\)", text, flags=re.MULTILINE).group(1)
    return values


def _entry():
    metadata = _cmakeMetadata()
    path = ROOT / "Resources" / "ExtensionsIndex" / f"{metadata['project']}.json"  # the index names it so
    return json.loads(path.read_text(encoding="utf-8")), metadata


def test_the_catalog_entry_is_valid_against_slicers_schema():
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.is_file():
        pytest.skip(f"Slicer's catalog entry schema is not at {SCHEMA}")
    entry, _ = _entry()
    jsonschema.validate(entry, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert entry["$schema"].endswith("/" + SCHEMA.name + "#")


def test_the_catalog_entry_agrees_with_the_cmake_metadata():
    entry, metadata = _entry()
    assert entry["category"] == metadata["EXTENSION_CATEGORY"]
    assert entry["build_dependencies"] == metadata["EXTENSION_DEPENDS"].split()
    assert entry["scm_url"] == metadata["EXTENSION_HOMEPAGE"] + ".git"
    assert "Slicer" in entry["scm_url"].rsplit("/", 1)[-1]  # the index refuses repositories not named *Slicer*


def test_the_icon_and_screenshot_urls_name_files_in_this_repository():
    metadata = _cmakeMetadata()
    owner_repo = metadata["EXTENSION_HOMEPAGE"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    icon = metadata["EXTENSION_ICONURL"]
    screenshots = metadata["EXTENSION_SCREENSHOTURLS"].split()
    assert icon.startswith(prefix) and screenshots and all(url.startswith(prefix) for url in screenshots)
    with Image.open(ROOT / icon.removeprefix(prefix)) as image:
        assert (image.format, image.size) == ("PNG", (128, 128))
    for url in screenshots:
        with Image.open(ROOT / url.removeprefix(prefix)) as image:
            assert image.format == "PNG" and min(image.size) >= 300, url
