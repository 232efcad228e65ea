import math

import hypero


def test_round_trip(conn: hypero.Connection) -> None:
    h = conn.battery("b", "v").experiment()
    h.uniform("x", 0, 1)
    h.set_result({"nan": math.nan, "inf": math.inf})
    h.close()
    r = conn.experiment(h.id).get_result()
    assert math.isnan(r["nan"]) and r["inf"] == math.inf
