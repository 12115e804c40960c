"""osc.pose: skeletons of several people, joint by joint or whole, and who has left."""

from __future__ import annotations

import numpy as np

from tonegraph.nodes.osc.pose import JOINTS, Pose

from ..conftest import NodeDriver


def send(node: Pose, address: str, *args) -> None:
    assert node.receive_osc(address, list(args))


def test_joints_one_by_one_and_whole_skeletons_from_several_people():
    d = NodeDriver(Pose, {"people": 3, "timeout": 1.0}, fps=10)
    send(d.node, "/pose/ana/left_wrist", 0.25, 0.5)
    send(d.node, "/pose/ana/right_wrist", 0.75, 0.5, 0.9)
    whole = [v for j in range(17) for v in (j / 20, 0.5 + j / 100, 0.95)]
    whole[3 * 9 + 2] = 0.05                        # bo's left wrist: too unsure to count
    send(d.node, "/pose/bo", *whole)
    assert not d.node.receive_osc("/tonegraph/x/y", [1.0])
    out = d.tick()
    assert out["count"] == 2.0
    joints = out["joints"].reshape(3, 17, 2)
    assert joints[0, JOINTS.index("left_wrist")].tolist() == [0.25, 0.5]
    assert np.allclose(joints[1, JOINTS.index("right_ankle")], [0.8, 0.66])
    assert joints[1, JOINTS.index("left_wrist")].tolist() == [-1.0, -1.0]
    assert np.allclose(out["hands"].reshape(3, 4)[0], [0.25, 0.5, 0.75, 0.5])
    assert out["left"].tolist() == [0.25, 0.5] and (joints[2] == -1).all()


def test_people_who_stop_sending_leave_and_motion_follows_movement():
    d = NodeDriver(Pose, {"people": 2, "timeout": 0.5, "smooth": 0.0}, fps=10)
    for k in range(5):                              # ana waves, bo stands still
        send(d.node, "/pose/ana/left_wrist", 0.2 + 0.05 * k, 0.5)
        send(d.node, "/pose/bo/left_wrist", 0.8, 0.5)
        out = d.tick()
    assert out["count"] == 2.0 and out["motion"] > 0.1
    for _ in range(8):                              # only bo goes on sending
        send(d.node, "/pose/bo/left_wrist", 0.8, 0.5)
        out = d.tick()
    assert out["count"] == 1.0 and np.allclose(out["left"], [0.8, 0.5])   # bo moved up a slot
    assert out["motion"] < 0.01
    send(d.node, "/pose/cy/nose", 0.5, 0.2)
    send(d.node, "/pose/dee/nose", 0.5, 0.2)        # the third person for two slots waits
    assert d.tick()["count"] == 2.0
