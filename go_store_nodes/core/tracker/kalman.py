"""A constant-velocity Kalman filter on a d-dimensional measurement (numpy only).

State ``[p (d), v (d)]``; the measurement is ``p``. Process noise is continuous white
acceleration of spectral density ``q`` per axis (``Q = q [[dt^3/3, dt^2/2], [dt^2/2,
dt]]``), so the uncertainty grows per second, whatever the frame rate. While the target is
unseen the prediction may damp the velocity (time constant ``tau``): ``p += tau (1 -
e^{-dt/tau}) v``, ``v *= e^{-dt/tau}``, the exact motion of an exponentially slowing
walker; the covariance keeps growing with the process noise either way.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from numpy.typing import NDArray


class ConstantVelocityFilter:
    """One target's state and covariance."""

    def __init__(self, position: NDArray, measurement_var: float, velocity_var: float) -> None:
        """Start at a measured position with zero velocity."""
        position = np.asarray(position, dtype=float)
        self.dim = int(position.shape[0])
        self.x = np.concatenate([position, np.zeros(self.dim)])
        self.P = np.diag(np.concatenate([np.full(self.dim, measurement_var),
                                         np.full(self.dim, velocity_var)]))
        self._eye = np.eye(self.dim)
        self._eye2 = np.eye(2 * self.dim)
        # Inverse innovation covariance for one measurement variance, until P changes:
        # gating and the update of the same frame share it.
        self._s_inv: Optional[tuple[float, NDArray]] = None

    @property
    def position(self) -> NDArray:
        """Return the estimated position (measurement units)."""
        return self.x[:self.dim]

    @property
    def velocity(self) -> NDArray:
        """Return the estimated velocity (measurement units per second)."""
        return self.x[self.dim:]

    def position_covariance(self) -> NDArray:
        """Return the d x d position covariance."""
        return self.P[:self.dim, :self.dim]

    def predict(self, dt_s: float, acceleration_psd: float,
                damping_tau_s: Optional[float] = None) -> None:
        """Advance by ``dt_s`` seconds; damp the velocity when ``damping_tau_s`` is given.

        ``acceleration_psd``: spectral density of the white acceleration (units^2/s^3).
        """
        if dt_s > 0.0:
            self.predict_with(*transition(self.dim, dt_s, acceleration_psd, damping_tau_s))

    def predict_with(self, f: NDArray, q: NDArray) -> None:
        """Advance with a transition and process noise from ``transition`` (shared)."""
        self.x = f @ self.x
        self.P = f @ self.P @ f.T + q
        self._s_inv = None

    def innovation(self, measurements: NDArray, measurement_var: float
                   ) -> tuple[NDArray, NDArray]:
        """Return innovations (n x d) and the inverse innovation covariance (d x d)."""
        if self._s_inv is None or self._s_inv[0] != measurement_var:
            s = self.position_covariance() + measurement_var * self._eye
            self._s_inv = (measurement_var, np.linalg.inv(s))
        return np.atleast_2d(measurements) - self.position, self._s_inv[1]

    def mahalanobis2(self, measurements: NDArray, measurement_var: float) -> NDArray:
        """Squared Mahalanobis distance of each measurement row to the predicted position."""
        nu, s_inv = self.innovation(measurements, measurement_var)
        return np.einsum('ni,ij,nj->n', nu, s_inv, nu)

    def update(self, measurement: NDArray, measurement_var: float) -> None:
        """Fuse one measured position (Joseph form keeps P symmetric positive)."""
        d = self.dim
        nu, s_inv = self.innovation(measurement, measurement_var)
        p_ht = self.P[:, :d]
        k = p_ht @ s_inv
        self.x = self.x + k @ nu[0]
        ikh = self._eye2.copy()
        ikh[:, :d] -= k
        self.P = ikh @ self.P @ ikh.T + measurement_var * (k @ k.T)
        self._s_inv = None


def transition(dim: int, dt_s: float, acceleration_psd: float,
               damping_tau_s: Optional[float] = None) -> tuple[NDArray, NDArray]:
    """Return F and Q of one prediction step (the same for every target of a frame)."""
    if damping_tau_s is None:
        shift, keep = dt_s, 1.0
    else:
        keep = math.exp(-dt_s / damping_tau_s)
        shift = damping_tau_s * (1.0 - keep)
    f_axis = np.array([[1.0, shift], [0.0, keep]])
    q_axis = acceleration_psd * np.array([[dt_s ** 3 / 3.0, dt_s ** 2 / 2.0],
                                          [dt_s ** 2 / 2.0, dt_s]])
    eye = np.eye(dim)
    return np.kron(f_axis, eye), np.kron(q_axis, eye)  # per axis: p_i couples with v_i only
