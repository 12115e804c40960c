"""osc.pose: the audience's skeletons over OSC, 17 joints each, from several people.

Pose trackers (MediaPipe, OpenPose or PoseNet bridges) send either one message per
joint or a whole skeleton at once, under ``prefix`` (default ``/pose``)::

    /pose/<person>/<joint> x y [score]          joint by its COCO name (below)
    /pose/<person> x0 y0 [s0] x1 y1 [s1] ...    17 joints in COCO order, with or without scores

``x`` and ``y`` are 0..1 image coordinates (x to the right, y down); ``<person>`` is any
name or number.  A joint whose score is under ``min_score`` is missing, and a person
not heard from for ``timeout`` seconds has left.  Up to ``people`` people are kept, in
the order they arrived.
"""

from __future__ import annotations

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick

JOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
          "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
          "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
INDEX = {name: i for i, name in enumerate(JOINTS)}
LEFT_WRIST, RIGHT_WRIST = INDEX["left_wrist"], INDEX["right_wrist"]
MISSING = -1.0


class Pose(Node):
    type_name = "osc.pose"
    description = "People's 17-joint skeletons over OSC (COCO joints), for worlds that react to an audience."
    params = {
        "prefix": P.text("/pose", "The OSC address the tracker sends under."),
        "people": P.integer(4, "Most people kept.", min=1, max=64, restart=True),
        "timeout": P.number(2.0, "A person not heard from for this long has left.", unit="s", min=0.05),
        "min_score": P.number(0.2, "Joints with a lower score are missing.", min=0.0, max=1.0),
        "smooth": P.number(0.1, "Time constant for 'motion'.", unit="s", min=0.0),
    }
    outputs = {
        "joints": ports.vector("people x 17 x (x, y), COCO order; -1 where missing."),
        "hands": ports.vector("people x (left wrist x, y, right wrist x, y); -1 where missing."),
        "count": ports.number("People present."),
        "motion": ports.number("How much they move: mean joint speed [screen widths per second]."),
        "left": ports.vector("The first person's left wrist (x, y), or -1, -1."),
        "right": ports.vector("The first person's right wrist (x, y), or -1, -1."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        if not params["prefix"].startswith("/") or params["prefix"].endswith("/"):
            return [("prefix", "an OSC address like /pose (starting with '/', not ending with one)")]
        return []

    def configure(self) -> None:
        n = self.p.people
        self.inbox: list[tuple[str, list]] = []
        self.ids: list[str] = []                      # who is in which slot
        self.joints = np.full((n, len(JOINTS), 2), MISSING, dtype=np.float32)
        self.heard = np.full(n, -np.inf)
        self.prev = self.joints.copy()
        self.motion = 0.0
        self._publish()

    def receive_osc(self, address: str, args: list) -> bool:
        """Called on the control thread for every incoming message."""
        prefix = self.p.prefix + "/"
        if not address.startswith(prefix):
            return False
        self.inbox.append((address[len(prefix):], args))
        return True

    def _slot(self, person: str, t: float) -> int | None:
        if person in self.ids:
            return self.ids.index(person)
        if len(self.ids) < self.p.people:
            self.ids.append(person)
            return len(self.ids) - 1
        return None                                   # full: ignored until someone leaves

    def _take(self, rest: str, args: list, t: float) -> None:
        nums = [float(a) for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        person, _, joint = rest.partition("/")
        if not person:
            return
        if joint:
            j = INDEX.get(joint)
            if j is None or len(nums) < 2:
                return
            slot = self._slot(person, t)
            if slot is None:
                return
            ok = len(nums) < 3 or nums[2] >= self.p.min_score
            self.joints[slot, j] = nums[:2] if ok else (MISSING, MISSING)
        else:
            per = 3 if len(nums) >= 3 * len(JOINTS) else 2
            if len(nums) < per * len(JOINTS):
                return
            slot = self._slot(person, t)
            if slot is None:
                return
            a = np.array(nums[:per * len(JOINTS)], dtype=np.float32).reshape(len(JOINTS), per)
            xy = a[:, :2].copy()
            if per == 3:
                xy[a[:, 2] < self.p.min_score] = MISSING
            self.joints[slot] = xy
        self.heard[slot] = t

    def process(self, tick: Tick) -> None:
        inbox, self.inbox = self.inbox, []
        for rest, args in inbox:
            self._take(rest, args, tick.t)
        # Those not heard from for a while have left: close the gap they leave.
        gone = [i for i in range(len(self.ids)) if tick.t - self.heard[i] > self.p.timeout]
        for i in reversed(gone):
            del self.ids[i]
            for arr, fill in ((self.joints, MISSING), (self.prev, MISSING), (self.heard, -np.inf)):
                arr[i:-1] = arr[i + 1:].copy()
                arr[-1] = fill
        both = (self.joints >= 0).all(axis=2) & (self.prev >= 0).all(axis=2)
        speed = 0.0
        if both.any() and tick.dt > 0:
            speed = float(np.linalg.norm(self.joints - self.prev, axis=2)[both].mean() / tick.dt)
        a = 1.0 - np.exp(-tick.dt / self.p.smooth) if self.p.smooth > 0 and tick.dt > 0 else 1.0
        self.motion += (speed - self.motion) * a
        self.prev = self.joints.copy()
        self._publish()

    def _publish(self) -> None:
        out = self.out
        out["joints"] = self.joints.ravel().copy()
        out["hands"] = self.joints[:, [LEFT_WRIST, RIGHT_WRIST]].ravel().copy()
        out["count"] = float(len(self.ids))
        out["motion"] = float(self.motion)
        out["left"] = self.joints[0, LEFT_WRIST].copy()
        out["right"] = self.joints[0, RIGHT_WRIST].copy()
