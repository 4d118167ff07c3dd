"""The CPU rehearsal of the GPU checks (tools/gpu_check.sh,
tools/analysis_tools/gpu_check.py): the same script at unit-test sizes, so
that a device run is never the first time it runs."""
import json
import os
import os.path as osp
import subprocess

import pytest

from tests.forked_tools import run_python

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCRIPT = osp.join(ROOT, 'tools', 'analysis_tools', 'gpu_check.py')


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    return env


def test_rehearsal_on_cpu(tmp_path):
    out = tmp_path / 'out'
    proc = run_python(
        [SCRIPT, str(out), '--device', 'cpu', '--small',
         '--families', 'stvit', '--compile-backend', 'aot_eager',
         '--only', 'correctness,amp,compile,speed,dense'],
        env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / 'gpu_check.json').read_text())
    log = (out / 'gpu_check.log').read_text()
    assert result['passed'] and 'all checks passed' in log
    checks = result['checks']

    # 1. every family's golden case, against the golden and the CPU logits
    rows = checks['correctness']['rows']
    assert {r['family'] for r in rows} == {
        'stvit', 'svt', 'swat_vit', 'swat_swin', 'swat_mixer',
        'swat_resmlp'}
    for row in rows:
        assert row['matches_golden'] and row['matches_cpu']
        assert row['max_abs_vs_golden'] < 1e-4
    # 2. bf16 and fp16 forward + backward, finite and near fp32
    amp = checks['amp']['rows']
    assert [(r['family'], r['dtype']) for r in amp] == [
        ('stvit', 'bf16'), ('stvit', 'fp16')]
    for row in amp:
        assert row['finite'] and row['out_rel_l2'] < 0.1
    assert checks['amp']['amp_optim_wrapper']['passed'] is None  # GPU only
    # 3. compiled equals eager, and both were timed
    (row, ) = checks['compile']['rows']
    assert row['passed'] and row['rel_l2_fp32'] <= 1e-4
    assert row['eager_ms'] > 0 and row['compiled_ms'] > 0
    # 4. no official clones given: said, not silently passed over
    assert checks['speed']['skipped'] == 'no --official folder given'
    # 5. the recipes' own training steps ran
    dense = {r['case']: r for r in checks['dense']['rows']}
    assert {'stvit-b upernet', 'swin-t upernet (mmseg)'} <= set(dense)
    for row in dense.values():
        assert row['images_per_s'] > 0 and row['batch'] == 2


def test_refusals(tmp_path):
    proc = run_python([SCRIPT, str(tmp_path), '--only', 'speedy'],
                      env=_env())
    assert proc.returncode == 2 and 'unknown checks' in proc.stderr
    proc = run_python([SCRIPT, str(tmp_path), '--families', 'resnet'],
                      env=_env())
    assert proc.returncode == 2 and 'unknown families' in proc.stderr
    sh = osp.join(ROOT, 'tools', 'gpu_check.sh')
    proc = subprocess.run(['bash', sh], capture_output=True, text=True)
    assert proc.returncode == 1 and 'give an output folder' in proc.stderr
    proc = subprocess.run(
        ['bash', sh, str(tmp_path), '--wheels', str(tmp_path / 'none')],
        capture_output=True, text=True)
    assert proc.returncode == 1 and '--download' in proc.stderr


@pytest.mark.skipif(__import__('torch').cuda.is_available(),
                    reason='checks the refusal on a machine without CUDA')
def test_cuda_refused_without_a_gpu(tmp_path):
    proc = run_python([SCRIPT, str(tmp_path)], env=_env())
    assert proc.returncode == 2 and '--device cpu' in proc.stderr
