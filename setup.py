"""swat_mm: STViT, SVT and SWAT backbones as an OpenMMLab plugin.

torch/torchvision and mmcv are not listed here on purpose: torch needs a
torchvision built for it, and mmcv must be compiled against the installed
torch with its ops, which pip cannot do from a plain requirement (an isolated
build silently drops the ops). tools/setup_env.sh prepares both; after it,
``pip install -e .`` into that environment works.

Like mmpretrain, mmdet and mmseg, the package carries its ``configs/``,
``tools/`` and ``model-index.yml`` in ``swat_mm/.mim/`` (where mmengine's
``swat_mm::`` config lookups and ``swat_mm.utils.model_index`` find them):
a wheel gets copies (written into the build directory only, never into the
source tree); an editable install gets links in the source tree's
``swat_mm/.mim/`` (git-ignored) to the originals.
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc')


def _fill_mim(mim_dir: str, link: bool) -> None:
    """Make ``mim_dir`` hold MIM_FILES: relative links to the originals
    (``link``) or copies."""
    if osp.islink(mim_dir) or osp.isfile(mim_dir):
        os.remove(mim_dir)
    elif osp.isdir(mim_dir):
        shutil.rmtree(mim_dir)
    os.makedirs(mim_dir)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
        if not osp.exists(src):
            raise FileNotFoundError(
                f'{src} is missing: build swat_mm from a complete checkout')
        if link:
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=MIM_IGNORE)
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """build_py that also fills ``swat_mm/.mim``: copies in the build
    directory for a wheel, links in the source tree for an editable
    install (PEP 660)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            _fill_mim(osp.join(HERE, 'swat_mm', '.mim'), link=True)
        else:
            _fill_mim(osp.join(self.build_lib, 'swat_mm', '.mim'),
                      link=False)


class DevelopWithMim(develop):
    """Legacy ``setup.py develop``: links, as for PEP 660."""

    def run(self) -> None:
        super().run()
        _fill_mim(osp.join(HERE, 'swat_mm', '.mim'), link=True)


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'swat_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='swat_mm',
    version=read_version(),
    description='STViT, SVT and SWAT vision backbones for mmpretrain, '
    'mmdetection and mmsegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['swat_mm', 'swat_mm.*']),
    python_requires='>=3.10',  # torch 2.13's wheels start at 3.10
    install_requires=[
        'mmengine==0.10.7',
        'mmpretrain==1.2.0',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'pytorch_wavelets==1.3.0',
        # imported by the packages above without being declared by them
        'PyWavelets',
        'ftfy',
        'regex',
        'setuptools<81',
    ],
    extras_require={'tests': [
        # xdist 3.8's --dist loadgroup does not group on pytest 9.2
        'pytest==9.1.1', 'pytest-xdist==3.8.0', 'matplotlib', 'onnx==1.23.2',
        # 1.23.2 is the newest onnxruntime for Python 3.10
        "onnxruntime==1.32.0; python_version >= '3.11'",
        "onnxruntime==1.23.2; python_version < '3.11'",
        # mmpretrain's vis_cam.py needs the use_cuda= that 1.5 removed
        'grad-cam==1.4.8',
        # mmdeploy==1.3.1 itself cannot be listed: it requires
        # protobuf<=3.20.2, which onnx 1.23.2 rules out; install it with
        # `pip install --no-deps mmdeploy==1.3.1` (tools/setup_env.sh does)
        'aenum==3.1.17',
        'onnxscript==0.7.2']},
    license='Apache-2.0',
    cmdclass={'build_py': BuildPyWithMim, 'develop': DevelopWithMim},
    zip_safe=False,
)
