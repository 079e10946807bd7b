"""A Griffe extension for cartokit's numpydoc docstrings, used by ``make docs`` (mkdocs.yml).

- Sphinx roles (``:func:`~cartokit.fit```) become code, and each ``cartokit`` target must
  exist: a role naming a function, class or module that does not is a broken cross-reference,
  logged as a warning, which fails the strict build.
- ``:math:`x``` becomes ``$x$`` (rendered by MathJax through pymdownx.arithmatex).
- Doctest lines outside an ``Examples`` section get one, so that they render as code.
- A public function, class or method without a docstring is logged as a warning too.
"""

from __future__ import annotations

import importlib
import logging
import re
from functools import cache
from typing import Any

import griffe

log = logging.getLogger("mkdocs.plugins.cartokit")

ROLE = re.compile(r":(func|class|meth|attr|data|mod|obj|exc):`([^`]+)`")
MATH = re.compile(r":math:`([^`]+)`")
SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]+)\n\1-{3,}\s*$", re.MULTILINE)


@cache
def _exists(dotted: str) -> bool:
    """Whether ``dotted`` names a module or an attribute reachable from one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        except Exception:  # a module that fails to import for another reason
            return False
        try:
            for name in parts[cut:]:
                target = getattr(target, name)
        except AttributeError:
            return False
        return True
    return False


def _in_griffe(scope: griffe.Object | None, name: str) -> bool:
    """Whether ``name`` is a member (e.g. an attribute set in ``__init__``) of ``scope``."""
    try:
        for part in name.split("."):
            if scope is None or part not in scope.members:
                return False
            scope = scope.members[part]
    except griffe.AliasResolutionError:  # a name not loaded yet: ask Python instead
        return False
    return True


def _check(target: str, obj: griffe.Object) -> None:
    name = "".join(target.split()).lstrip("~").lstrip(".")
    if "<" in name:  # :func:`title <target>`
        name = name.split("<", 1)[1].rstrip(">")
    parent = obj.parent
    scopes = [obj.path, parent.path if parent else "", obj.module.path, "cartokit", "builtins", ""]
    candidates = [f"{scope}.{name}" if scope else name for scope in scopes]
    if any(_in_griffe(s, name) for s in (obj, parent)) or any(_exists(c) for c in candidates):
        return
    if name.startswith("cartokit") or "." not in name:
        where = f"{obj.relative_filepath}:{obj.lineno}"
        log.warning("%s: broken cross-reference %r in the docstring of %s", where, target, obj.path)


PARAMETER_SECTIONS = {"Parameters", "Other Parameters", "Attributes", "Returns", "Yields", "Raises"}


def _numpydoc_sections(text: str) -> str:
    """Give prose after a parameter list a ``Notes`` header and loose doctests ``Examples``,
    as numpydoc wants (Griffe would read the prose as parameters, the doctests as text)."""
    lines = text.splitlines()
    out: list[str] = []
    section = ""
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"-{3,}", nxt.strip()):
            section = line.strip()
        elif line and not line[0].isspace() and (i == 0 or not lines[i - 1].strip()):
            if line.startswith(">>>") and section != "Examples":
                out += ["Examples", "--------"]
                section = "Examples"
            elif section in PARAMETER_SECTIONS and " : " not in line and len(line.split()) >= 6:
                out += ["Notes", "-----"]
                section = "Notes"
        out.append(line)
    return "\n".join(out)


class CartokitDocstrings(griffe.Extension):
    """Rewrites and checks each docstring as Griffe loads it (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[str, griffe.Object]] = []  # checked once all is loaded

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Check the cross-references, now that every member they may name is loaded."""
        for target, obj in self.pending:
            _check(target, obj)
        self.pending.clear()

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = obj.docstring.value
        self.pending += [(target, obj) for _, target in ROLE.findall(text)]
        text = ROLE.sub(_code, text)
        text = MATH.sub(lambda m: f"${m.group(1)}$", text)
        obj.docstring.value = _numpydoc_sections(text)

    def on_module_members(
        self, *, node: Any, mod: griffe.Module, agent: Any, **kwargs: Any
    ) -> None:
        """Every name a public module exports (its ``__all__``) that it defines needs a
        docstring, and so do the public methods of the classes among them."""
        if any(part.startswith("_") for part in mod.path.split(".")) or not mod.exports:
            return
        for name in mod.exports:
            member = mod.members.get(name) if isinstance(name, str) else None
            if member is None or member.is_alias:
                continue
            todo = [member]
            if member.is_class:
                todo += [
                    m for n, m in member.members.items()
                    if not n.startswith("_") and not m.is_alias and m.is_function
                    and not _overrides(member, n)
                ]  # fmt: skip
            for item in todo:
                if item.kind in (griffe.Kind.FUNCTION, griffe.Kind.CLASS) and not item.docstring:
                    where = f"{item.relative_filepath}:{item.lineno}"
                    log.warning("%s: %s has no docstring", where, item.path)


def _code(match: re.Match[str]) -> str:
    """A Sphinx role as code: ``~a.b.c`` shows ``c``, anything else in full."""
    target = "".join(match.group(2).split())
    return f"`{target.lstrip('~').split('.')[-1]}`" if target.startswith("~") else f"`{target}`"


def _overrides(cls: griffe.Class, name: str) -> bool:
    """Whether method ``name`` of ``cls`` overrides a base class's (whose docstring holds)."""
    for base in cls.bases:
        dotted = str(base)
        module, _, attr = dotted.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attr) if module else None
        except Exception:
            found = None
        if found is not None and hasattr(found, name):
            return True
        if found is None and dotted:  # a base Griffe could not import: give it the benefit
            return True
    return False
