"""The benchmarks run end to end (tiny sizes); timings are not asserted, memory is."""

import pytest

from kaflib.bench import kaf_costs


@pytest.mark.slow  # memory measured in subprocesses
def test_kaf_benchmark_reports_ratios_and_the_fast_kaf_stores_less_than_the_direct_formula():
    report = kaf_costs(batch_size=16, steps=1, activations=("relu", "kaf", "kaf (direct)"), progress=False)
    rows = report["resnet20"]
    assert set(rows) == {"relu", "kaf", "kaf (direct)"}
    assert rows["relu"]["fgsm_rs_vs_relu"] == 1.0
    assert all(row["standard_s"] > 0 and row["fgsm_rs_s"] > 0 for row in rows.values())
    # the direct formula keeps (..., C, D) = 20x the activation for the backward pass
    assert rows["kaf (direct)"]["fgsm_rs_peak_mb"] > 3 * rows["kaf"]["fgsm_rs_peak_mb"]
    assert set(report["layer_forward_backward_s"]) == {"relu", "kaf", "kaf (direct)"}
    assert report["fgsm_rs_speedup_over_direct"]["kaf"] > 0
