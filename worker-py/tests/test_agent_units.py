"""Pure pieces of the agent: backoff, exit-code mapping, send queue, spec fields, devices, log format."""
import logging
import random

import pytest

from byol_worker.agent.backoff import backoff_delay
from byol_worker.agent.devices import DeviceError, detect
from byol_worker.agent.exit_status import classify_exit
from byol_worker.agent.logfmt import KeyValueFormatter
from byol_worker.agent.outbox import Outbox
from byol_worker.agent.supervisor import cpu_threads, grace_period_s, spec_section
from byol_worker.proto import agent_pb2 as S


class _Fixed(random.Random):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def random(self):
        return self.value


def test_backoff_doubles_from_200ms_to_a_5s_cap_with_jitter_in_half_to_full():
    top = [backoff_delay(k, _Fixed(0.999999)) for k in range(7)]
    assert top == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0], rel=1e-5)
    low = [backoff_delay(k, _Fixed(0.0)) for k in range(7)]
    assert low == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5])
    assert backoff_delay(3, _Fixed(0.5)) == pytest.approx(1.6 * 0.75)
    assert backoff_delay(10_000, _Fixed(0.0)) == pytest.approx(2.5)  # no overflow on long outages


@pytest.mark.parametrize("code,kw,state,message", [
    (0, {}, S.TRAINER_SUCCEEDED, ""),
    (75, {}, S.TRAINER_PREEMPTED, "stopped on request after a checkpoint"),
    (2, {"last_error": "spec.x: bad"}, S.TRAINER_FAILED, "spec.x: bad"),
    (2, {}, S.TRAINER_FAILED, "bad input (exit 2) and no reason on stderr"),
    (1, {"last_error": "Traceback tail"}, S.TRAINER_FAILED, "Traceback tail"),
    (-9, {"aborted": True}, S.TRAINER_ABORTED, "killed by SIGKILL on the coordinator's abort"),
    (-11, {"last_error": "Fatal Python error: Segmentation fault"}, S.TRAINER_FAILED,
     "killed by SIGSEGV (signal 11), which the agent did not send: a crash, a user or the node; "
     "last error: Fatal Python error: Segmentation fault"),
    # After a signal, a routine INFO line is not the cause and is not quoted as one.
    (-9, {"last_error": "20:01:02 INFO byol.trainer [rank 0] checkpoint step 30 saved: /c/step-000000030"},
     S.TRAINER_FAILED, "killed by SIGKILL (signal 9), which the agent did not send: often the kernel's OOM killer "
     "(see `dmesg`), a user or the node"),
])
def test_exit_codes_map_to_states(code, kw, state, message):
    assert classify_exit(code, **kw) == (state, message)


def test_kill_after_grace_names_the_setting():
    state, msg = classify_exit(-9, killed_after_grace=True)
    assert state == S.TRAINER_FAILED and "spec.preemption.gracePeriodSeconds" in msg


def test_outbox_is_fifo_takes_back_and_drops_progress_first_when_full():
    box = Outbox(max_len=3)
    p = S.AgentMessage(progress=S.Progress(step=1))
    t1 = S.AgentMessage(trainer=S.TrainerStatus(rank=1))
    t2 = S.AgentMessage(trainer=S.TrainerStatus(rank=2))
    t3 = S.AgentMessage(trainer=S.TrainerStatus(rank=3))
    for m in (t1, p, t2):
        box.put(m)
    box.put(t3)  # full: the progress goes, the statuses stay
    assert box.dropped == 1
    first = box.get(0)
    box.unget(first)
    assert [box.get(0) for _ in range(3)] == [t1, t2, t3]
    assert box.get(0.01) is None and box.wait_empty(0)


def test_spec_fields_from_full_document_or_bare_spec():
    doc = '{"apiVersion": "byol/v1", "spec": {"preemption": {"gracePeriodSeconds": 12}, ' \
          '"resources": {"threadsPerWorker": 4}}}'
    assert grace_period_s(doc) == 12 and cpu_threads(doc, 2) == 4
    assert grace_period_s('{"preemption": {"gracePeriodSeconds": 7}}') == 7
    assert grace_period_s("") == 30 and grace_period_s("not json") == 30 and spec_section("[1]") == {}
    assert grace_period_s('{"preemption": 5}') == 30 and cpu_threads('{"resources": "x"}', 10_000) == 1
    import os
    assert cpu_threads('{"resources": {"threadsPerWorker": 0}}', 2) == max(1, (os.cpu_count() or 1) // 2)
    assert cpu_threads("{}", 10_000) == 1


def test_devices_flag():
    assert [d.id for d in detect("cpu:3")] == ["cpu:0", "cpu:1", "cpu:2"]
    assert detect("cpu")[0].env_value == "cpu"
    import torch
    if torch.cuda.is_available():
        assert [d.id for d in detect("auto")] == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        assert detect("cuda")[0].env_value == "cuda:0" and detect("cuda")[0].memory_bytes > 0
    else:
        assert [d.id for d in detect("auto")] == ["cpu:0"]
        with pytest.raises(DeviceError, match="no CUDA device"):
            detect("cuda")
    for bad in ("cpu:0", "gpu", "cpu:x"):
        with pytest.raises(DeviceError, match="--devices"):
            detect(bad)


def test_logfmt_quotes_values_that_need_it():
    rec = logging.LogRecord("byol.agent", logging.WARNING, __file__, 1, "stream_broken", None, None)
    rec.kv = {"code": "UNAVAILABLE", "hint": 'say "hi" now', "empty": "", "n": 3, "skip": None}
    line = KeyValueFormatter().format(rec)
    assert line.split(" ", 1)[1] == ('level=warning logger=byol.agent event=stream_broken code=UNAVAILABLE '
                                     'hint="say \\"hi\\" now" empty="" n=3')
