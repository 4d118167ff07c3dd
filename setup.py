"""swat_mm: STViT, SVT and SWAT backbones as an OpenMMLab plugin.

torch/torchvision and mmcv are not listed here on purpose: torch needs a
torchvision built for it, and mmcv must be compiled against the installed
torch with its ops, which pip cannot do from a plain requirement (an isolated
build silently drops the ops). tools/setup_env.sh prepares both; after it,
``pip install -e .`` into that environment works.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'swat_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='swat_mm',
    version=read_version(),
    description='STViT, SVT and SWAT vision backbones for mmpretrain, '
    'mmdetection and mmsegmentation',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
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
        'pytest', 'matplotlib', 'onnx==1.23.2',
        # 1.23.2 is the newest onnxruntime for Python 3.10
        "onnxruntime==1.32.0; python_version >= '3.11'",
        "onnxruntime==1.23.2; python_version < '3.11'",
        'onnxscript==0.7.2']},
    license='Apache-2.0',
    zip_safe=False,
)
