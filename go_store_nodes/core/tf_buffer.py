"""A frame tree that answers "where is frame A in frame B", fed from /tf_static.

The buffer is a plain object, filled with ``set_transform`` and queried with
``lookup``; a ROS listener (``go_store_nodes.ros.tf.StaticTransformListener``)
fills it from messages. Only static transforms are kept: the store's frames
(cameras, shelves) do not move while it runs.
"""

from __future__ import annotations

from .transforms import Transform


class FrameLookupError(LookupError):
    """A transform between two frames is not known (yet)."""


class TransformBuffer:
    """Static transforms between frames, each child with one parent."""

    def __init__(self) -> None:
        """Create an empty buffer."""
        self._parent: dict[str, tuple[str, Transform]] = {}

    def set_transform(self, parent_frame: str, child_frame: str, transform: Transform) -> None:
        """Record ``transform`` as T_parent_child; a later call for the same child replaces it."""
        if not parent_frame or not child_frame:
            raise ValueError('frame ids must not be empty')
        if parent_frame == child_frame:
            raise ValueError(f'frame {child_frame!r} cannot be its own parent')
        if child_frame in self._path_to_root(parent_frame):
            raise ValueError(
                f'{parent_frame!r} -> {child_frame!r} would close a loop in the frame tree')
        self._parent[child_frame] = (parent_frame, transform)

    def frames(self) -> set[str]:
        """Every frame named so far, as parent or child."""
        names = set(self._parent)
        names.update(parent for parent, _ in self._parent.values())
        return names

    def can_transform(self, target_frame: str, source_frame: str) -> bool:
        """Whether ``lookup(target_frame, source_frame)`` would succeed."""
        try:
            self.lookup(target_frame, source_frame)
        except FrameLookupError:
            return False
        return True

    def lookup(self, target_frame: str, source_frame: str) -> Transform:
        """Return T_target_source: maps points in ``source_frame`` into ``target_frame``."""
        if target_frame == source_frame:
            return Transform.identity()
        source_path = self._path_to_root(source_frame)
        target_path = self._path_to_root(target_frame)
        common = next((frame for frame in source_path if frame in set(target_path)), None)
        if common is None:
            known = ', '.join(sorted(self.frames())) or 'none'
            raise FrameLookupError(
                f'no transform from {source_frame!r} to {target_frame!r}: they are not '
                f'connected (known frames: {known})')
        return self._to_ancestor(target_frame, common).inverse() @ self._to_ancestor(
            source_frame, common)

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._parent:
            path.append(self._parent[path[-1]][0])
        return path

    def _to_ancestor(self, frame: str, ancestor: str) -> Transform:
        transform = Transform.identity()
        while frame != ancestor:
            parent, t_parent_frame = self._parent[frame]
            transform = t_parent_frame @ transform
            frame = parent
        return transform
