import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402

from flowtutor import pde, plotting  # noqa: E402


def test_plots_draw_and_report_slopes():
    g = pde.Grid2D.square(-1.0, 1.0, 8)
    fig, axs = plt.subplots(1, 4)
    img = plotting.plot_density(torch.rand(8, 8, dtype=torch.float64), g, axs[0], "d")
    assert img.get_array().shape == (8, 8)
    plotting.plot_samples(torch.randn(20, 2), axs[1])
    plotting.plot_trajectories(torch.randn(5, 10, 2), axs[2], n_show=3)
    assert len(axs[2].lines) == 3
    slope = plotting.plot_convergence([0.1, 0.05, 0.025], [1e-2, 2.5e-3, 6.25e-4], axs[3], "x", reference=2.0)
    assert abs(slope - 2.0) < 1e-12
    plt.close(fig)


def test_panels_fill_rows_and_fit_the_column():
    fig, axes = plotting.panels(5, ncols=3, row_height=2.0, sharey=True)
    assert axes.shape == (5,) and len(fig.axes) == 5  # the sixth cell of the 2 x 3 grid is removed
    assert tuple(fig.get_size_inches()) == (plotting.COLUMN_WIDTH, 4.0)
    rows = sorted({round(ax.get_position().y0, 3) for ax in axes})
    assert len(rows) == 2 and axes[0].get_position().y0 > axes[3].get_position().y0  # row by row, top first
    plt.close(fig)
    fig, axes = plotting.panels(2, ncols=4)
    assert axes.shape == (2,) and fig.get_size_inches()[1] == 2.8  # one row of two
    plt.close(fig)


def test_animation_has_one_frame_per_time():
    g = pde.Grid2D.square(-1.0, 1.0, 8)
    anim = plotting.animate_flow(torch.randn(4, 10, 2), [0.0, 0.1, 0.2, 0.3], torch.rand(4, 8, 8), g)
    assert isinstance(anim, FuncAnimation)
    assert len(anim.to_jshtml().split("frames[")) > 4


def test_animation_html_loads_nothing_from_outside() -> None:
    anim = plotting.animate_flow(torch.randn(3, 5, 2), [0.0, 0.5, 1.0])
    assert "font-awesome" in anim.to_jshtml()  # matplotlib's player links a CDN style sheet
    html = plotting.animation_html(anim)
    assert "//maxcdn" not in html and "font-awesome" not in html and "<img" in html
