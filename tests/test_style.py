"""llmct.style: the Okabe-Ito palette (valid hex, the published eight), verdict colours covering
the verdict vocabulary, series styles, colour ramps, panel grids, and reproducible PNG + SVG."""

from __future__ import annotations

import json
import re

import pytest

from llmct import style as st
from llmct.scan.findings import VERDICTS

HEX = re.compile(r"#[0-9A-F]{6}")


def _all_colours() -> dict[str, str]:
    colours = {f"OKABE_ITO[{i}]": c for i, c in enumerate(st.OKABE_ITO)}
    colours.update({f"NAMED[{k}]": c for k, c in st.NAMED.items()})
    colours.update({f"VERDICT_COLOURS[{k}]": c for k, c in st.VERDICT_COLOURS.items()})
    colours.update({f"SOURCE_COLOURS[{k}]": c for k, c in st.SOURCE_COLOURS.items()})
    colours.update({f"SEQUENTIAL[{i}]": c for i, c in enumerate(st.SEQUENTIAL)})
    colours.update({f"DIVERGING[{i}]": c for i, c in enumerate(st.DIVERGING)})
    return colours


def test_every_colour_is_valid_hex():
    bad = {k: c for k, c in _all_colours().items() if not HEX.fullmatch(c)}
    assert not bad


def test_the_palette_is_the_published_okabe_ito_eight():
    assert set(st.OKABE_ITO) == {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
                                 "#D55E00", "#CC79A7", "#000000"}
    assert len(st.OKABE_ITO) == 8 and st.OKABE_ITO[-1] == "#F0E442"  # yellow last (weak on white)
    assert set(st.OKABE_ITO) <= set(st.NAMED.values())


def test_verdict_colours_cover_the_verdict_vocabulary():
    assert set(VERDICTS) <= set(st.VERDICT_COLOURS)
    assert set(st.VERDICT_COLOURS) - set(VERDICTS) == {"n/a"}
    shown = [st.VERDICT_COLOURS[v] for v in ("reproduced", "reproduced, but a control explains it",
                                             "partly", "not reproduced")]
    assert len(set(shown)) == 4  # the four outcomes are told apart
    assert st.VERDICT_COLOURS["not testable here"] == st.NAMED["grey"] == st.CONTROL_COLOUR


def test_series_styles_use_colours_first_then_dashes():
    assert st.series_style(0) == {"color": st.OKABE_ITO[0], "linestyle": "-"}
    assert st.series_style(7)["color"] == st.OKABE_ITO[7]
    assert st.series_style(8) == {"color": st.OKABE_ITO[0], "linestyle": "--"}
    assert st.series_style(8 * 4)["linestyle"] == "-"  # the dashes cycle too
    styles = {tuple(st.series_style(i).values()) for i in range(32)}
    assert len(styles) == 32


def test_sources_have_their_own_colours():
    assert len(set(st.SOURCE_COLOURS.values())) == 4
    assert st.source_colour("attn_out") == st.NAMED["orange"]
    assert st.source_colour("resid_mid") == st.NAMED["black"]
    assert set(st.SOURCE_SHORT) == set(st.SOURCE_COLOURS)


def test_colour_ramps_run_between_their_anchors():
    from matplotlib.colors import to_hex

    seq, div = st.sequential_cmap(), st.diverging_cmap()
    assert to_hex(seq(0.0)).upper() == "#FFFFFF" and to_hex(seq(1.0)).upper() == st.SEQUENTIAL[-1]
    assert to_hex(div(0.0)).upper() == st.DIVERGING[0] and to_hex(div(1.0)).upper() == "#0072B2"
    assert div(0.5)[:3] == pytest.approx((1.0, 1.0, 1.0), abs=0.01)  # zero is white (256-entry LUT)


def test_panels_hide_the_unused_axes():
    import matplotlib.pyplot as plt

    fig, axes = st.panels(5, ncols=2, width=3.0, height=2.0)
    try:
        assert len(axes) == 5 and all(ax.get_visible() for ax in axes)
        assert [ax.get_visible() for ax in fig.axes] == [True] * 5 + [False]
        assert tuple(fig.get_size_inches()) == pytest.approx((6.0, 6.0))  # 2 columns x 3 rows
    finally:
        plt.close(fig)


def test_save_figure_writes_png_and_a_reproducible_svg(tmp_path):
    import matplotlib.pyplot as plt

    st.apply_style()

    def draw(path):
        fig, (ax,) = st.panels(1)
        ax.plot([0, 1, 2], [1, 0, 2], **st.series_style(1))
        return st.save_figure(fig, path)

    paths = draw(tmp_path / "a" / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.svg"] and all(p.stat().st_size for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []  # closed
    again = draw(tmp_path / "b" / "fig")
    assert again[1].read_bytes() == paths[1].read_bytes()  # no date, fixed hash salt


def test_web_theme_is_json_and_style_returns_the_module():
    theme = json.loads(json.dumps(st.web_theme()))
    assert theme["palette"] == st.OKABE_ITO and theme["verdict"] == st.VERDICT_COLOURS
    assert st.style() is st
