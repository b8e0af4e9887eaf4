"""Telemetry (ZeroMQ PUSH, never blocking, drops counted) and the trainer's control/report channels."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time

import pytest
import zmq
from google.protobuf import json_format

from byol_worker.train.control import AssignmentError, ControlChannel, Reporter, assignment_file, read_assignment
from byol_worker.proto import agent_pb2, telemetry_pb2, trainer_pb2
from byol_worker.train.telemetry import TelemetrySender

KW = dict(job_id="j", generation=4, rank=1)


def _recv(sock, cls, timeout_ms=2000):
    assert sock.poll(timeout_ms), "nothing received"
    m = cls()
    m.ParseFromString(sock.recv())
    return m


def test_telemetry_frames_and_counted_drops(tmp_path):
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    t = TelemetrySender(f"tcp://127.0.0.1:{port}", world_size=2, **KW)
    assert t.send(step=7, loss=1.5, tau=0.99, lr=0.2, step_time_s=0.1, data_time_s=0.01, images_per_sec=640,
                  epoch=0.5, extra={"z_std": 0.06})
    m = _recv(pull, telemetry_pb2.Metric)
    assert (m.job_id, m.generation, m.rank, m.world_size, m.step) == ("j", 4, 1, 2, 7)
    assert (m.loss, m.tau, m.lr, m.epoch, dict(m.extra)) == (1.5, 0.99, 0.2, 0.5, {"z_std": 0.06})
    assert abs(m.sent_unix_ms - time.time() * 1000) < 5000
    t.close()
    pull.close()
    # nobody listening and a queue of 5: sends return at once, and what does not fit is counted
    dead = TelemetrySender(f"ipc://{tmp_path}/nobody", world_size=2, hwm=5, **KW)
    t0 = time.monotonic()
    sent = [dead.send(step=k, loss=0, tau=0, lr=0, step_time_s=0, data_time_s=0, images_per_sec=0, epoch=0)
            for k in range(50)]
    assert time.monotonic() - t0 < 1.0
    assert dead.dropped == sent.count(False) and dead.dropped >= 40
    dead.close()
    off = TelemetrySender("", world_size=1, **KW)  # no address: a no-op
    assert not off.send(step=0, loss=0, tau=0, lr=0, step_time_s=0, data_time_s=0, images_per_sec=0, epoch=0)


def test_telemetry_with_a_key_sends_the_metric_and_its_hmac(tmp_path):
    pull = zmq.Context.instance().socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    key = os.urandom(32)
    t = TelemetrySender(f"tcp://127.0.0.1:{port}", world_size=2, key=key, **KW)
    assert t.send(step=3, loss=1.0, tau=0.99, lr=0.1, step_time_s=0.1, data_time_s=0, images_per_sec=1, epoch=0.1)
    assert pull.poll(2000)
    data, mac = pull.recv_multipart()
    assert mac == hmac.new(key, data, hashlib.sha256).digest()
    m = telemetry_pb2.Metric()
    m.ParseFromString(data)
    assert (m.job_id, m.generation, m.rank, m.step) == ("j", 4, 1, 3)
    t.close()
    pull.close()


def test_an_assignment_file_others_can_read_is_warned_about(tmp_path, caplog):
    doc = {"job_id": "j", "generation": "1", "spec_json": "{}",
           "telemetry_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
    path = tmp_path / "assignment.json"
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="byol.control"):
        a = read_assignment(str(path))
    assert a.telemetry_key == bytes(range(32))
    assert "readable by other users (mode 644)" in caplog.text and "0600" in caplog.text
    caplog.clear()
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING, logger="byol.control"):
        read_assignment(str(path))
    assert caplog.text == ""


def test_read_assignment_gives_plain_values_once(tmp_path):
    """The proto stops at read_assignment: the trainer gets numbers, strings and dicts, and the schedule keeps
    the proto JSON form that checkpoints record."""
    sched = agent_pb2.ScheduleState(total_steps=12, warmup_steps=2, peak_lr=0.5, tau_base=0.99, steps_per_epoch=3,
                                    global_batch=8, micro_batch=4, accumulation=1)
    msg = agent_pb2.Assignment(job_id="j", generation=7, rank=1, world_size=2, spec_json='{"spec": {"a": 1}}',
                               spec_hash="c0" * 32, schedule=sched, stop_at_step=9)
    path = tmp_path / "assignment.json"
    path.write_text(json.dumps(assignment_file(msg, "ipc://c", "ipc://r")))
    os.chmod(path, 0o600)
    a = read_assignment(str(path))
    assert (a.job_id, a.generation, a.rank, a.world_size, a.stop_at_step) == ("j", 7, 1, 2, 9)
    assert (a.control_address, a.report_address, a.spec) == ("ipc://c", "ipc://r", {"spec": {"a": 1}})
    assert a.spec_hash == "c0" * 32  # the coordinator's hash, carried as is (the worker computes none)
    assert (a.schedule.total_steps, a.schedule.peak_lr, a.schedule.accumulation) == (12, 0.5, 1)
    assert a.schedule.as_recorded == json_format.MessageToDict(sched, preserving_proto_field_name=True)
    path.write_text(json.dumps({"job_id": "j", "spec_json": "{not json"}))
    with pytest.raises(AssignmentError, match="assignment spec_json: not valid JSON"):
        read_assignment(str(path))


def test_control_poll_merges_commands_and_reports_flow(tmp_path):
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.bind(f"ipc://{tmp_path}/control")
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"ipc://{tmp_path}/report")
    ctl = ControlChannel(f"ipc://{tmp_path}/control")
    assert ctl.poll().stop_at_step == 0  # nothing yet, and it did not wait
    for kind, step in ((agent_pb2.COMMAND_STOP_AT_STEP, 90), (agent_pb2.COMMAND_STOP_AT_STEP, 60),
                       (agent_pb2.COMMAND_CHECKPOINT_NOW, 0)):
        push.send(trainer_pb2.TrainerControl(type=kind, step=step).SerializeToString())
    deadline = time.monotonic() + 2
    while not ctl.poll().checkpoint_now and time.monotonic() < deadline:
        time.sleep(0.01)
    st = ctl.state
    assert st.checkpoint_now and st.stop_at_step == 60 and not st.stop_now and not st.abort  # earliest wins
    push.send(b"\xff\x00garbage")  # a bad frame is ignored, not fatal
    push.send(trainer_pb2.TrainerControl(type=agent_pb2.COMMAND_STOP_AT_STEP, step=0).SerializeToString())
    while not ctl.poll().stop_now and time.monotonic() < deadline + 2:
        time.sleep(0.01)
    assert ctl.state.stop_now

    rep = Reporter(f"ipc://{tmp_path}/report", min_interval_s=10, **KW)
    rep.progress(5, 0.1)
    rep.progress(6, 0.2)  # throttled: within the interval
    rep.progress(7, 0.3, force=True)
    rep.checkpoint(7, False, error="OSError: [Errno 28] No space left on device")
    rep.progress(8, 0.4, results={"knn_top1": 0.5})  # results are never throttled
    got = [_recv(pull, trainer_pb2.TrainerReport) for _ in range(4)]
    assert [g.progress.step for g in got[:2]] == [5, 7] and got[0].progress.generation == 4
    assert not got[2].checkpoint.ok and "No space" in got[2].checkpoint.error
    assert got[3].progress.step == 8 and dict(got[3].progress.results) == {"knn_top1": 0.5}
    for s in (ctl, rep):
        s.close()
    push.close()
    pull.close()
