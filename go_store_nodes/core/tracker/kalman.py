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
        if dt_s <= 0.0:
            return
        d = self.dim
        if damping_tau_s is None:
            shift, keep = dt_s, 1.0
        else:
            keep = math.exp(-dt_s / damping_tau_s)
            shift = damping_tau_s * (1.0 - keep)
        eye = np.eye(d)
        f = np.block([[eye, shift * eye], [np.zeros((d, d)), keep * eye]])
        q_axis = acceleration_psd * np.array([[dt_s ** 3 / 3.0, dt_s ** 2 / 2.0],
                                              [dt_s ** 2 / 2.0, dt_s]])
        q = np.kron(q_axis, eye)  # per axis: p_i couples with v_i only
        self.x = f @ self.x
        self.P = f @ self.P @ f.T + q

    def innovation(self, measurements: NDArray, measurement_var: float
                   ) -> tuple[NDArray, NDArray]:
        """Return innovations (n x d) and the inverse innovation covariance (d x d)."""
        s = self.position_covariance() + measurement_var * np.eye(self.dim)
        return np.atleast_2d(measurements) - self.position, np.linalg.inv(s)

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
        ikh = np.eye(2 * d)
        ikh[:, :d] -= k
        r = measurement_var * np.eye(d)
        self.P = ikh @ self.P @ ikh.T + k @ r @ k.T
