"""A set of graphics to measure on: charts, screenshots and icons with transparency.

    python benchmarks/graphics_set.py DIR          # writes the set into DIR (about 20 s)

What web and app developers shrink besides photographs, made here so that anyone can rebuild
it: charts drawn by matplotlib (lines, bars, a heatmap, a scatter with translucent markers, a
pie, stacked areas), pages rendered by the Chromium the tests install (an API reference, a
page of text, a page showing a photograph, a dashboard), and icons drawn with antialiased
edges over transparency (a badge, a star, a gear-like cog, a rounded gradient button) at two
sizes. Everything is drawn from fixed seeds, so the set is the same on every run of the same
library versions. The photo page embeds a CQ100 photograph (``--photo``).
"""

from __future__ import annotations

import argparse
import base64
import html
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTO = HERE.parent.parent / "shared" / "cq100" / "floating_market.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                  "--font-render-hinting=none"]


def make_charts(folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(2026)
    made = []

    def save(fig, name: str) -> None:
        path = folder / f"chart-{name}.png"
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        made.append(path)

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    x = np.linspace(0, 10, 400)
    for index in range(5):
        ax.plot(x, np.sin(x + index) + 0.15 * index * x, label=f"series {index + 1}", linewidth=1.6)
    ax.set(xlabel="time (s)", ylabel="signal", title="Five signals")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    save(fig, "lines")

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    ax.bar(months, rng.uniform(20, 100, 12), color=plt.cm.tab20.colors[:12])
    ax.set(title="Sales by month", ylabel="units")
    ax.grid(axis="y", alpha=0.3)
    save(fig, "bars")

    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    field = rng.normal(size=(24, 24)).cumsum(axis=0).cumsum(axis=1)
    image = ax.imshow(field, cmap="viridis")
    fig.colorbar(image, ax=ax)
    ax.set_title("Field")
    save(fig, "heatmap")

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    points = rng.normal(size=(2, 500))
    ax.scatter(points[0], points[1], c=np.hypot(*points), cmap="plasma", alpha=0.6, s=28)
    ax.set(title="Scatter", xlabel="x", ylabel="y")
    save(fig, "scatter")

    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.pie(rng.uniform(1, 5, 6), labels=[f"part {i + 1}" for i in range(6)], autopct="%1.0f%%",
           colors=plt.cm.Set2.colors[:6], startangle=90)
    ax.set_title("Shares")
    save(fig, "pie")

    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    years = np.arange(2000, 2027)
    layers = rng.uniform(0.5, 2, (4, len(years))).cumsum(axis=1)
    ax.stackplot(years, layers, labels=["north", "south", "east", "west"], alpha=0.85)
    ax.legend(loc="upper left")
    ax.set(title="Stacked areas", xlim=(years[0], years[-1]))
    save(fig, "areas")
    return made


def make_icons(folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyBboxPatch, Polygon

    made = []

    def canvas(size: int):
        fig = plt.figure(figsize=(size / 100, size / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
        ax.axis("off")
        return fig, ax

    def badge(ax):
        ax.add_patch(Circle((0.5, 0.5), 0.46, color="#2e7d32"))
        ax.plot([0.28, 0.44, 0.74], [0.52, 0.34, 0.68], color="white", linewidth=ax.figure.get_figwidth() * 9,
                solid_capstyle="round", solid_joinstyle="round")

    def star(ax):
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 0.47, 0.2)
        ax.add_patch(Polygon(np.c_[0.5 + radii * np.cos(angles), 0.5 + radii * np.sin(angles)],
                             facecolor="#ffb300", edgecolor="#e65100", linewidth=ax.figure.get_figwidth() * 2))

    def cog(ax):
        angles = np.linspace(0, 2 * np.pi, 97)
        radii = 0.36 + 0.08 * (np.sin(8 * angles) > 0)
        ax.add_patch(Polygon(np.c_[0.5 + radii * np.cos(angles), 0.5 + radii * np.sin(angles)], color="#455a64"))
        ax.add_patch(Circle((0.5, 0.5), 0.14, color="white", alpha=0.0))
        ax.add_patch(Circle((0.5, 0.5), 0.14, color="#cfd8dc"))

    def button(ax):
        gradient = np.linspace(0, 1, 256)[:, None] * np.ones((1, 8))
        patch = FancyBboxPatch((0.06, 0.22), 0.88, 0.56, boxstyle="round,pad=0,rounding_size=0.12",
                               facecolor="none", edgecolor="none")
        ax.add_patch(patch)
        image = ax.imshow(gradient, extent=(0.06, 0.94, 0.22, 0.78), cmap="Blues", vmin=-0.6, vmax=1.3,
                          origin="lower", aspect="auto")
        image.set_clip_path(patch)
        ax.text(0.5, 0.5, "OK", ha="center", va="center", color="white", fontsize=ax.figure.get_figwidth() * 22,
                fontweight="bold")

    for size in (64, 256):
        for name, draw in (("badge", badge), ("star", star), ("cog", cog), ("button", button)):
            fig, ax = canvas(size)
            draw(ax)
            path = folder / f"icon-{name}-{size}.png"
            fig.savefig(path, transparent=True, metadata={"Software": None})
            plt.close(fig)
            made.append(path)
    return made


def _api_page() -> str:
    endpoints = [("GET", "/api/health", "Liveness of the service."),
                 ("GET", "/api/methods", "The clustering methods, their names and descriptions."),
                 ("POST", "/api/compress", "Quantize one image; the palette PNG in the body."),
                 ("POST", "/api/compress/json", "Quantize one image; a JSON record with the file in base64."),
                 ("POST", "/api/compare", "Every method on one image, with a figure."),
                 ("DELETE", "/api/jobs/{id}", "Cancel a job that has not finished.")]
    colours = {"GET": "#61affe", "POST": "#49cc90", "DELETE": "#f93e3e"}
    rows = "".join(
        f'<div class="op" style="border-color:{colours[m]};background:{colours[m]}1a">'
        f'<span class="verb" style="background:{colours[m]}">{m}</span><code>{html.escape(p)}</code>'
        f"<span>{html.escape(d)}</span></div>" for m, p, d in endpoints)
    params = "".join(f"<tr><td><code>{n}</code></td><td>{t}</td><td>{d}</td></tr>" for n, t, d in (
        ("colors", "integer", "Palette size, 2 to 256 (default 200)."),
        ("method", "string", "kmeans, minibatch or gmm."),
        ("dither", "number", "Error diffusion strength, 0 to 1."),
        ("max_size", "string", "Byte budget: 150000, 100KB or 30%."),
        ("metrics", "string", "Figures to compute, comma separated.")))
    return f"""<style>body{{font:14px sans-serif;margin:24px 40px;color:#3b4151}}
    h1{{font-size:28px}} .op{{display:flex;gap:16px;align-items:center;border:1px solid;border-radius:4px;
    padding:6px;margin:8px 0}} .verb{{color:#fff;font-weight:bold;border-radius:3px;padding:6px 12px;
    min-width:60px;text-align:center}} code{{font:13px monospace}} table{{border-collapse:collapse;width:100%}}
    td,th{{border-bottom:1px solid #ddd;padding:8px;text-align:left}} th{{background:#fafafa}}</style>
    <h1>colorquant API <small style="font-size:12px;background:#89bf04;color:#fff;padding:2px 6px;
    border-radius:10px">1.0</small></h1><p>Learn a palette, write a smaller PNG.</p>{rows}
    <h2>Parameters</h2><table><tr><th>name</th><th>type</th><th>description</th></tr>{params}</table>"""


def _text_page() -> str:
    paragraphs = [
        "An image with a few thousand distinct colours can usually be shown with 16 to 256 well-chosen ones. "
        "colorquant learns those colours by clustering the pixels, maps every pixel to its nearest palette "
        "colour, and writes a palette PNG that is smaller than the input.",
        "The number of colours can be chosen for you: the fewest that meet a quality target, the smallest file "
        "that meets one, or the best-looking file that fits a byte budget. Every figure is computed on the "
        "file as written, so what you read is what you get.",
        "Batches of folders survive being killed: a manifest records each finished image, and a second run "
        "picks up where the first stopped. Nothing is written outside the output folder, and inputs are never "
        "overwritten.",
    ]
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs * 2)
    return f"""<style>body{{font:16px/1.6 serif;max-width:760px;margin:40px auto;color:#222}}
    h1{{font:bold 32px sans-serif}} pre{{background:#f6f8fa;padding:12px;border-radius:6px;font:13px monospace}}
    a{{color:#0969da}}</style><h1>Making images smaller</h1>{body}
    <pre>pip install colorquant &amp;&amp; colorquant compress photo.png --max-size 100KB</pre>
    <p>See <a href="#">the reference</a> for every option.</p>"""


def _photo_page(photo: Path) -> str:
    data = base64.b64encode(photo.read_bytes()).decode()
    return f"""<style>body{{font:15px sans-serif;margin:0;background:#f4f1ea;color:#333}}
    header{{background:#1d3557;color:#fff;padding:14px 32px;font-size:22px}}
    main{{display:flex;gap:28px;padding:28px 32px}} img{{width:560px;border-radius:8px;
    box-shadow:0 4px 14px #0004}} aside h2{{margin-top:0}} button{{background:#e63946;color:#fff;border:0;
    padding:10px 18px;border-radius:6px;font-size:15px}}</style>
    <header>Travel journal</header><main><img src="data:image/png;base64,{data}">
    <aside><h2>Floating market</h2><p>Boats laden with fruit and flowers crowd the canal at dawn.</p>
    <p>Photographed in the early morning light.</p><button>Read more</button></aside></main>"""


def _dashboard_page() -> str:
    rng = np.random.default_rng(7)
    cards = "".join(
        f'<div class="card"><div class="label">{name}</div><div class="value">{value:,}</div>'
        f'<div class="bar"><div style="width:{share}%;background:{colour}"></div></div></div>'
        for name, value, share, colour in zip(
            ("Images", "Bytes saved", "Jobs", "Errors"), rng.integers(1000, 90000, 4),
            rng.integers(20, 95, 4), ("#4caf50", "#2196f3", "#ff9800", "#f44336")))
    rows = "".join(f"<tr><td>photo-{i:03d}.png</td><td>{rng.integers(50, 900)} KB</td>"
                   f"<td>{rng.integers(10, 300)} KB</td><td><span class=ok>done</span></td></tr>" for i in range(9))
    return f"""<style>body{{font:14px sans-serif;margin:0;background:#eef1f5;color:#263238;display:flex}}
    nav{{width:200px;background:#263238;color:#cfd8dc;min-height:800px;padding:20px}}
    nav div{{padding:10px 0}} main{{flex:1;padding:24px}} .cards{{display:flex;gap:16px}}
    .card{{background:#fff;border-radius:8px;padding:16px;flex:1;box-shadow:0 1px 3px #0002}}
    .label{{color:#78909c}} .value{{font-size:26px;font-weight:bold;margin:6px 0}}
    .bar{{height:6px;background:#eceff1;border-radius:3px}} .bar div{{height:6px;border-radius:3px}}
    table{{width:100%;background:#fff;border-radius:8px;margin-top:20px;border-collapse:collapse}}
    td,th{{padding:10px;border-bottom:1px solid #eceff1;text-align:left}}
    .ok{{background:#e8f5e9;color:#2e7d32;padding:2px 8px;border-radius:10px}}</style>
    <nav><b>colorquant</b><div>Overview</div><div>Batches</div><div>Settings</div></nav>
    <main><h2>Overview</h2><div class="cards">{cards}</div>
    <table><tr><th>file</th><th>before</th><th>after</th><th>status</th></tr>{rows}</table></main>"""


def make_screenshots(folder: Path, photo: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    pages = {"api": _api_page(), "text": _text_page(), "photo": _photo_page(photo), "dashboard": _dashboard_page()}
    made = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1024, "height": 700}, device_scale_factor=1)
        for name, content in pages.items():
            page.set_content(f"<!doctype html><html><body>{content}</body></html>")
            path = folder / f"screen-{name}.png"
            page.screenshot(path=str(path))
            made.append(path)
        browser.close()
    return made


def make_graphics(folder: Path, photo: Path = DEFAULT_PHOTO) -> list[Path]:
    """Write the set into ``folder``; return the paths, charts first."""
    folder.mkdir(parents=True, exist_ok=True)
    return make_charts(folder) + make_screenshots(folder, photo) + make_icons(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    args = parser.parse_args()
    for path in make_graphics(args.folder, args.photo):
        print(path)


if __name__ == "__main__":
    main()
