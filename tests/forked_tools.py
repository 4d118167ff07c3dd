"""``python <script> args...`` for the tests, as forks of one interpreter
that has already imported the third-party stack.

Every tool run a test starts (``tools/train.py``, ``tools/test.py``, the
exporter, the converters, mmseg's packaged tools, ...) spends 5-8
CPU-seconds importing torch, mmengine, mmcv, mmdet, mmseg and mmpretrain
before its own first line runs; the suite starts about 50 of them, on a
2-core machine. Here a server process (one per pytest worker, started at
its first use) imports that stack once, and each run is a child forked from
it that then does what ``python script args`` does: the run's environment,
working directory, ``sys.argv`` and ``sys.path[0]`` (the script's folder),
stdin from ``/dev/null``, stdout and stderr into files, the script executed
as ``__main__`` (:func:`runpy.run_path`), and the interpreter's own exit: an
uncaught exception prints its traceback and exits 1, ``SystemExit`` gives
its status, atexit handlers run.

What a fork shares with its server, and how that is kept from mattering:

* ``swat_mm`` is never imported by the server: each run imports and
  registers the plugin itself (through the tool, ``custom_imports`` or a
  config), as a user's process does.
* An environment variable can be read while the stack is imported (thread
  counts, ``PYTHONHASHSEED``): a run whose environment differs from the
  one the server started with runs in a fresh interpreter instead, unless
  the difference is in variables read later or only by swat_mm (``_FREE``:
  ``SWAT_MM_*``, pytest's, inductor's cache folder, ``PYTHONPATH``, which
  the child applies to ``sys.path`` as Python would) or in variables the
  stack's imports set themselves (cv2's, mmseg's), where the child gets
  them as the same imports would have set them.
* The global random generators of Python, NumPy and torch, seeded from
  the OS in a fresh process, are seeded from the OS again in the child.
* The server's objects (the imported stack's, about half a million) are
  frozen (``gc.freeze()``) before it forks: they live as long as the
  process, as in a fresh interpreter, and the children's collections of
  the oldest generation no longer walk them (26 % less CPU for nine
  training runs, 2026-12-07); the children's own objects are collected as
  usual.
* The server forks only while it has a single thread (the case under
  ``tests/conftest.py``'s ``OMP_NUM_THREADS=1``); otherwise every run is
  fresh.
* ``SWAT_MM_TEST_FRESH_TOOLS=1`` runs everything in fresh interpreters.

Tests whose claim is about the process itself (killed runs, distributed
launches, installs, first-run setup) start fresh interpreters directly.
"""
import atexit
import json
import os
import os.path as osp
import select
import signal
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

# What a tool process imports before its own code runs (swat_mm aside).
STACK = ('torch', 'torchvision', 'mmengine.runner', 'mmcv.ops',
         'mmpretrain.models', 'mmpretrain.datasets', 'mmpretrain.evaluation',
         'mmdet.models', 'mmdet.datasets', 'mmdet.evaluation',
         'mmseg.models', 'mmseg.datasets', 'mmseg.evaluation')

_SERVER = r'''
import gc, importlib, json, os, random, sys, warnings
before = dict(os.environ)
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    for name in json.loads(sys.argv[1]):
        importlib.import_module(name)
import numpy, torch
assert 'swat_mm' not in sys.modules
# sys.path past '' (the -c) and this server's own PYTHONPATH entries
site_path = sys.path[1 + len([p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]):]
requests, replies = sys.stdin.buffer, sys.stdout.buffer
# what the imports set in the environment (cv2, mmseg, torch set some)
set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
gc.collect()
gc.freeze()  # see the module's docstring
threads = len(os.listdir('/proc/self/task'))
replies.write(json.dumps(dict(before=before, set=set_by_imports, threads=threads)).encode() + b'\n')
replies.flush()
while True:
    line = requests.readline()
    if not line:
        sys.exit(0)
    req = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        break
    replies.write(b'%d\n' % pid); replies.flush()
    _, status = os.waitpid(pid, 0)
    replies.write(b'%d\n' % os.waitstatus_to_exitcode(status)); replies.flush()

# the child: what `python script args` would have set up
for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                        (1, req['stdout'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                        (2, req['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
    opened = os.open(path, flags, 0o644)
    os.dup2(opened, fd)
    os.close(opened)
os.chdir(req['cwd'])
os.environ.clear()
os.environ.update(req['env'])
# as the same imports in a fresh process with this environment set them
for k, v in set_by_imports.items():
    if req['env'].get(k) == before.get(k):
        os.environ[k] = v
random.seed()
numpy.random.seed()
torch.seed()
script = req['argv'][0]
sys.argv = list(req['argv'])
# the script's folder (symlinks resolved), then PYTHONPATH, then the rest
extra = [p for p in req['env'].get('PYTHONPATH', '').split(os.pathsep) if p]
sys.path[:] = [os.path.dirname(os.path.realpath(script))] + extra + site_path
import runpy
runpy.run_path(os.path.abspath(script), run_name='__main__')
'''


# The environment the pytest process started with; tests may change
# os.environ while they run.
_BASE_ENV = dict(os.environ)

# Variables nothing in the stack reads while it is imported: a run may set
# them as it likes (the child gets them); PYTHONPATH is applied in the child,
# inductor reads its cache folder when it compiles.
_FREE = ('SWAT_MM_', 'PYTEST_', 'PYTHONPATH', 'TORCHINDUCTOR_CACHE_DIR')


class _Server:
    """One forking server; runs one request at a time."""

    def __init__(self) -> None:
        # the server's own messages (a crash); its runs write elsewhere
        self.log = tempfile.NamedTemporaryFile(prefix='forked_tools_server_',
                                               suffix='.log', delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, '-c', _SERVER, json.dumps(STACK)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd='/',
            env={k: v for k, v in _BASE_ENV.items() if not k.startswith(_FREE)},
            stderr=self.log, bufsize=0)  # unbuffered: select() sees every line
        ready = self._read(600)
        if ready is None:
            raise RuntimeError('the tool server did not start')
        started = json.loads(ready)
        self.env, self.set_by_imports = started['before'], started['set']
        # a fork copies only the forking thread: with another one running
        # (OpenBLAS's or OpenMP's pools unless OMP_NUM_THREADS=1, as
        # tests/conftest.py sets) a lock it held would stay held
        self.forkable = started['threads'] == 1

    def _read(self, timeout: Optional[float]) -> Optional[bytes]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('the tool server exited')
        return line.strip()

    def serves(self, env: Dict[str, str]) -> bool:
        if not self.forkable:
            return False
        if self.proc.poll() is not None:
            with open(self.log.name) as f:
                raise RuntimeError(
                    f'the tool server (tests/forked_tools.py) exited with status '
                    f'{self.proc.returncode}; its log {self.log.name}:\n'
                    + f.read()[-3000:])
        for k in set(env) | set(self.env):
            if k.startswith(_FREE):
                continue
            if k in self.set_by_imports:
                # unset, as before the imports, or as they set it
                if env.get(k) not in (None, self.env.get(k),
                                      self.set_by_imports[k]):
                    return False
            elif env.get(k) != self.env.get(k):
                return False
        return True

    def run(self, argv: List[str], cwd: str, env: Dict[str, str],
            timeout: Optional[float]) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix='forked_tool_') as tmp:
            out, err = osp.join(tmp, 'stdout'), osp.join(tmp, 'stderr')
            req = dict(argv=argv, cwd=cwd, env=env, stdout=out, stderr=err)
            self.proc.stdin.write(json.dumps(req).encode() + b'\n')
            self.proc.stdin.flush()
            pid = int(self._read(60))
            status = self._read(timeout)
            if status is None:
                os.kill(pid, signal.SIGKILL)
                self._read(60)
                raise subprocess.TimeoutExpired(
                    [sys.executable] + argv, timeout, *_outputs(out, err))
            stdout, stderr = _outputs(out, err)
        return subprocess.CompletedProcess([sys.executable] + argv,
                                           int(status), stdout, stderr)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)


def _outputs(out: str, err: str):
    def read(path):
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', errors='replace')
    return read(out), read(err)


_server: Optional[_Server] = None
atexit.register(lambda: close())


def run_python(args: Sequence[str], *, cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
               timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, *args], cwd=cwd, env=env,
    stdin=DEVNULL, capture_output=True, text=True, timeout=timeout)``,
    where ``args[0]`` is a script: run as a fork of the server where the
    environment allows (see the module's docstring)."""
    global _server
    env = dict(os.environ if env is None else env)
    cwd = os.getcwd() if cwd is None else str(cwd)
    args = [str(a) for a in args]
    fresh = (os.environ.get('SWAT_MM_TEST_FRESH_TOOLS') == '1'
             or not args or args[0].startswith('-'))
    if not fresh:
        if _server is None:
            _server = _Server()
        fresh = not _server.serves(env)
    if fresh:
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    return _server.run(args, cwd, env, timeout)


def close() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None
