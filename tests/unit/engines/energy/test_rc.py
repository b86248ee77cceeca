"""The 5R1C model against hand-computed answers: steady state, free decay of the mass, gain split."""

from __future__ import annotations

import numpy as np
import pytest

from civictwin.engines.energy.rc import Network, mass_area_factor, simulate, split_gains

HOURS = 24 * 60


def _network() -> Network:
    # 100 m² floor, medium construction (165 kJ/(m²K) -> A_m = 2.5 A_f): H_ve 50, H_w 30, H_op 80 W/K
    return Network(
        floor_area_m2=np.array([100.0]), h_ve=np.array([50.0]), h_tr_w=np.array([30.0]),
        h_tr_op=np.array([80.0]), c_m=np.array([165_000.0 * 100]), a_m=np.array([250.0]),
    )  # fmt: skip


def _run(
    network: Network,
    theta_e: float,
    *,
    heat: float,
    cool: float,
    gains: float = 0.0,
    theta_m0: float = 20.0,
    hours: int = HOURS,
):  # type: ignore[no-untyped-def]
    zeros = np.zeros((hours, 1))
    phi_ia, phi_st, phi_m = split_gains(network, zeros + gains, zeros)
    return simulate(
        network, theta_e=np.full(hours, theta_e), phi_ia=phi_ia, phi_st=phi_st, phi_m=phi_m,
        heating_setpoint=zeros + heat, cooling_setpoint=zeros + cool, theta_m0=np.array([theta_m0]),
    )  # fmt: skip


def _steady_load(theta_e: float, theta_air: float, phi_ia: float, phi_st: float, phi_m: float) -> float:
    """The network's steady state solved by hand: node balances of star and mass, then the air's.

    Mass: H_ms (θs − θm) + Φ_m = H_em (θm − θe); star: H_is (θa − θs) + Φ_st + H_ms (θm − θs) = H_w (θs − θe);
    air: Φ_HC = H_ve (θa − θe) + H_is (θa − θs) − Φ_ia. With θa fixed this is two linear equations.
    """
    h_ve, h_w, h_op, h_ms, h_is = 50.0, 30.0, 80.0, 9.1 * 250.0, 3.45 * 4.5 * 100.0
    h_em = 1.0 / (1.0 / h_op - 1.0 / h_ms)
    a = np.array([[h_ms, -(h_ms + h_em)], [-(h_is + h_ms + h_w), h_ms]])  # unknowns θs, θm
    rhs = np.array([-h_em * theta_e - phi_m, -h_is * theta_air - phi_st - h_w * theta_e])
    theta_s, _ = np.linalg.solve(a, rhs)
    return h_ve * (theta_air - theta_e) + h_is * (theta_air - theta_s) - phi_ia


def test_steady_state_heating_by_hand() -> None:
    # without gains the star node sits at θs = H_is θa / (H_is + H_w + H_op) = 1552.5 × 20 / 1662.5
    # = 18.677 °C, so Φ = H_ve × 20 + (H_w + H_op) × 18.677 = 1000 + 2054.44 = 3,054.44 W
    loads = _run(_network(), 0.0, heat=20.0, cool=26.0)
    assert loads.load_w[-1, 0] == pytest.approx(3054.436, abs=1e-3)
    assert loads.load_w[-1, 0] == pytest.approx(_steady_load(0.0, 20.0, 0.0, 0.0, 0.0), rel=1e-9)
    assert loads.theta_air[-1, 0] == pytest.approx(20.0)


def test_steady_state_cooling_with_internal_gains_by_hand() -> None:
    # 30 °C outside, 2,000 W internal gains (half to the air, half to star and mass), cooled to 26 °C
    net = _network()
    phi_ia, phi_st, phi_m = (
        float(v[0, 0]) for v in split_gains(net, np.array([[2000.0]]), np.array([[0.0]]))
    )
    loads = _run(net, 30.0, heat=20.0, cool=26.0, gains=2000.0)
    assert loads.load_w[-1, 0] == pytest.approx(_steady_load(30.0, 26.0, phi_ia, phi_st, phi_m), rel=1e-9)
    assert loads.load_w[-1, 0] < -2000.0  # removes the gains and the heat coming in


def test_free_floating_building_settles_at_outdoor_plus_gains_over_conductance() -> None:
    # no heating or cooling: θ_air → θ_e + gains / H_total only when gains reach the air through
    # all paths; here no gains, so the mass decays towards 5 °C
    loads = _run(_network(), 5.0, heat=-np.inf, cool=np.inf, theta_m0=20.0)
    assert np.all(loads.load_w == 0.0)
    assert loads.theta_air[-1, 0] == pytest.approx(5.0, abs=1e-3)


def test_mass_decays_with_the_networks_time_constant() -> None:
    # free decay: with no gains and θ_e = 0, θ_m relaxes through H_tr,em and through H_tr,ms in series
    # with the star node's paths (H_w, and H_is + H_ve); time constant τ = C_m / (H_em + H_3),
    # H_3 = 1/(1/H_2 + 1/H_ms), H_2 = H_w + 1/(1/H_ve + 1/H_is)
    net = _network()
    h_ms, h_is = 9.1 * 250.0, 3.45 * 4.5 * 100.0
    h_em = 1.0 / (1.0 / 80.0 - 1.0 / h_ms)
    h_2 = 30.0 + 1.0 / (1.0 / 50.0 + 1.0 / h_is)
    h_3 = 1.0 / (1.0 / h_2 + 1.0 / h_ms)
    tau_h = 165_000.0 * 100 / (h_em + h_3) / 3600.0
    loads = _run(net, 0.0, heat=-np.inf, cool=np.inf, theta_m0=10.0, hours=48)
    # the Crank–Nicolson step's factor per hour against exp(−1/τ): equal to 4 decimals at τ ≈ 32 h
    expected = 10.0 * np.exp(-48 / tau_h)
    assert loads.theta_m_end[0] == pytest.approx(expected, rel=2e-4)


def test_gain_split_follows_iso_13790_c2() -> None:
    net = _network()
    phi_ia, phi_st, phi_m = split_gains(net, np.array([[1000.0]]), np.array([[400.0]]))
    # Φ_ia = 0.5 Φ_int; Φ_m = A_m/A_t (0.5 Φ_int + Φ_sol) = 250/450 × 900; Φ_st the rest less the window share
    assert phi_ia[0, 0] == pytest.approx(500.0)
    assert phi_m[0, 0] == pytest.approx(250 / 450 * 900)
    assert phi_st[0, 0] == pytest.approx((1 - 250 / 450 - 30 / (9.1 * 450)) * 900)


def test_mass_area_factor_follows_table_12() -> None:
    factors = mass_area_factor(np.array([80_000.0, 165_000.0, 260_000.0, 370_000.0, 315_000.0]))
    assert factors.tolist() == pytest.approx([2.5, 2.5, 3.0, 3.5, 3.25])
