"""Print pip requirements pinning pyproject.toml's dependencies to their floors.

Every dependency must be declared as ``name>=floor``; the test extra is
printed as declared (pip picks versions that fit the pinned floors).
"""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
for requirement in project["dependencies"]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)", requirement.strip())
    if match is None:
        sys.exit(f"cannot find the floor of {requirement!r}: declare it as name>=version")
    print(f"{match[1]}=={match[2]}")
for requirement in project["optional-dependencies"]["test"]:
    print(requirement)
