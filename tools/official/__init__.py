"""The authors' implementations, built from clones of their repositories.

Development tooling, not part of the installed ``swat_mm`` package: the
benchmark's ``--official`` comparison
(``tools/analysis_tools/benchmark_engine.py``) and the golden-fixture
generators (``tests/golden/make_swat*_golden.py``) build the official model
that matches one of ours and load our weights into it.

* :mod:`.loading`: importing a clone's file by path, and loading our
  weights under the same state-dict names; every builder goes through it.
* :mod:`.stvit`, :mod:`.svt`: ``build_official_stvit``,
  ``build_official_svt``.
* :mod:`.swat`: the SWAT builders and the patch functions that make a
  temporary copy of the official (modified timm) code importable.

Import it with the repository root on ``sys.path`` (the tools put it there).
"""
