"""Take every screenshot in docs/img/ from a throwaway demo back office.

    .venv/bin/python docs/screenshots.py [--port 8765] [--database /tmp/docs.sqlite3]

Playwright is a dev dependency (requirements-dev.txt). The browser is Debian's Chromium
(`apt-get install -y chromium`; another one through the CHROMIUM variable); Playwright's own
browser download is not needed.

What it does: creates a fresh SQLite database (the file is deleted first), migrates it, loads
the demo data (`seed_demo`, with DEBUG on so that the demo users exist: the catalog, 50,000
orders, one mining run and a few review decisions and links, about 30 s), runs a second
mining (`mine_suggestions`, so that the run list shows a recompute with unchanged
suggestions), starts `runserver` on 127.0.0.1 and then, like a person would:

- as the product specialist, looks at the product list, checks and applies a small import,
  checks a broken file, edits one product and looks at its page (catalog.md);
- looks at the mining runs, one run, the suggestions, a backtest, the orders and one order
  (mining.md, orders.md);
- works a few rows of the review queue with the keys, opens the exclusion dialog, previews a
  bulk approval with the keys help open (review.md);
- looks at the team dashboard (dashboard.md);
- adds links by hand on two products' links pages and sets a product to discontinued; then,
  as the administrator, turns on publishing in batches on the Publish page; as the
  specialist again adds, reorders and retires links of the drill (now waiting for publish)
  and looks at its links page; as the administrator looks at the Publish page (links.md);
- runs one more mining with a stricter minimum lift (`mine_suggestions --min-lift`, this run
  only), so that some approved links lose their evidence, and looks at "Needs attention";
- as the specialist and the administrator at once, edits one product: the administrator
  saves a new price, the specialist then saves a new name on the form loaded before, and is
  refused with what changed (catalog.md);
- looks at the History page (the audit trail) of the product it edited (operations.md);
- with a second server that requires the second factor (MFA_REQUIRED=true, on the next
  port), signs in as the marketing user: the set-up page with its QR code (a throwaway key of
  this throwaway database), then, signed in again, the page that asks for the code
  (operations.md).

The project's own virtual environment (.venv) runs Django and this script. The server is
stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from django_otp.oath import TOTP
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
PYTHON = ROOT / ".venv" / "bin" / "python"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The demo users (seed_demo, DEBUG on): one per role, all with the same password.
SPECIALIST, ADMIN, PASSWORD = "specialist", "admin", "demo-pass-2026"
# The second factor is set up by a user that the other screenshots do not use.
MFA_USER = "marketing"
# A base product of the demo catalog with two pack variants (box of 500; 1000 and 5000 pcs).
BASE_SKU = "FDW-0001"
# The backtest: mine the orders before this date, test on the rest of the demo history (to 1 Nov 2026).
BACKTEST_CUTOFF = "2026-08-01"
WIDTH = 1280
# The links pages: a cordless drill with mined cross-sells (seed_demo's review), which gets
# accessories and a substitute by hand, a bigger drill that it can stand in for, and a product
# (staples, the target of an approved link) that goes out of the range.
DRILL, BIGGER_DRILL, DISCONTINUED_SKU = "DRL-0001", "DRL-0003", "STP-0002"
# "Needs attention": a later run with this minimum lift (the settings' default is lower) no
# longer finds the demo's weakest approved pairs (a lift of 22 to 24), so their evidence is stale.
STRICT_MIN_LIFT = "24"
# The edit conflict: a product that no other screenshot shows.
CONFLICT_SKU = "FDW-0002"


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(PYTHON), "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not answer on {url}")


def import_files(env: dict[str, str], workdir: Path) -> tuple[Path, Path]:
    """A good file (a price change, a new bigger pack, a description) and a broken one,
    both made from the demo catalog's own export."""
    exported = workdir / "export.csv"
    manage(env, "export_products", str(exported))
    with exported.open(encoding="utf-8", newline="") as handle:
        rows = {row["sku"]: row for row in csv.DictReader(handle)}
    columns = ["sku", "name", "brand", "category", "unit_price", "pack_quantity", "unit", "status", "base_sku"]
    base = rows[BASE_SKU]
    variants = [row for row in rows.values() if row["base_sku"] == BASE_SKU]
    variants.sort(key=lambda row: int(row["pack_quantity"]))
    biggest = variants[-1]

    good = [dict(base, unit_price=f"{float(base['unit_price']) * 1.04:.2f}")]
    good.append(dict(biggest, unit_price=f"{float(biggest['unit_price']) * 0.97:.2f}"))
    new_pack = int(biggest["pack_quantity"]) * 2
    good.append(
        dict(
            biggest,
            sku=f"{BASE_SKU}-{new_pack}",
            name=base["name"].rsplit(",", 1)[0] + f", pallet of {new_pack}",
            pack_quantity=str(new_pack),
            unit_price=f"{float(biggest['unit_price']) * 1.85:.2f}",
            status="draft",
        )
    )
    good_path = workdir / "drywall-screws-2026.csv"
    _write(good_path, columns, good)

    broken = [
        dict(base, unit_price=base["unit_price"].replace(".", ",")),
        dict(variants[0]),
        dict(variants[0]),
        dict(biggest, status="sold out"),
        dict(base, sku=f"{BASE_SKU}-X", base_sku=variants[0]["sku"]),
        dict(base, sku=f"{BASE_SKU}-Y", pack_quantity="0", base_sku=BASE_SKU),
    ]
    broken_path = workdir / "supplier-prices.csv"
    _write(broken_path, columns, broken)
    return good_path, broken_path


def _write(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def shoot(page, name: str, *, full_page: bool = False, down_to: str | None = None, height: int | None = None) -> None:
    """Save a screenshot; a full-page one is as tall as the content, without empty space below;
    ``down_to`` (a selector) ends it just below that element; ``height`` makes the window taller."""
    path = IMG / name
    viewport = page.viewport_size
    if full_page:
        page.set_viewport_size({"width": viewport["width"], "height": 300})
    elif height:
        page.set_viewport_size({"width": viewport["width"], "height": height})
    clip = None
    if down_to:
        box = page.locator(down_to).bounding_box()
        clip = {"x": 0, "y": 0, "width": viewport["width"], "height": box["y"] + box["height"] + 16}
    page.screenshot(path=str(path), full_page=full_page or clip is not None, clip=clip)
    page.set_viewport_size(viewport)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def shoot_list(page, name: str, *, full_page: bool = False) -> None:
    """Save a screenshot of a change list; when its table is wider than the window (it scrolls
    sideways), take it in a wider window at a smaller scale, still WIDTH pixels wide."""
    overflow = page.evaluate(
        "() => { const r = document.querySelector('.results'); return r.scrollWidth - r.clientWidth; }"
    )
    if overflow <= 0:
        shoot(page, name, full_page=full_page)
        return
    viewport = page.viewport_size
    width = viewport["width"] + overflow + 16
    context = page.context.browser.new_context(
        storage_state=page.context.storage_state(),  # signed in, left-hand model list folded away
        viewport={"width": width, "height": round(viewport["height"] * width / viewport["width"])},
        device_scale_factor=WIDTH / width,
    )
    try:
        wide = context.new_page()
        wide.goto(page.url)
        wide.wait_for_selector("#result_list")
        shoot(wide, name, full_page=full_page)
    finally:
        context.close()


def sign_in(browser, base_url: str, username: str, *, then: str = "#user-tools"):
    """A page in a browser context of its own, signed in as ``username`` (``then``: the
    selector of the page that follows the password)."""
    # A 1536 px wide window (room for the product list's columns) rendered at 5/6 scale: 1280 px images.
    context = browser.new_context(viewport={"width": 1536, "height": 1000}, device_scale_factor=WIDTH / 1536)
    page = context.new_page()
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector(then)
    return page


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    )


def take(env: dict[str, str], base_url: str, good_csv: Path, broken_csv: Path) -> None:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = sign_in(browser, base_url, SPECIALIST)
        # Fold away the admin's left-hand model list (remembered by the browser) to give the tables room.
        page.goto(f"{base_url}/admin/catalog/product/")
        page.click("#toggle-nav-sidebar")

        take_catalog(page, base_url, good_csv, broken_csv)
        take_mining(page, base_url)
        take_orders(page, base_url)
        take_review(page, base_url)
        take_dashboard(page, base_url)
        admin = sign_in(browser, base_url, ADMIN)
        take_links(page, admin, base_url)
        take_attention(env, page, base_url)
        take_conflict(page, admin, base_url)
        take_audit(page, base_url)

        browser.close()


def take_catalog(page, base_url: str, good_csv: Path, broken_csv: Path) -> None:
    """The product list, an import (preview, applied), a broken file, one product's page."""
    # The product list: search, filters, actions, import/export buttons.
    page.goto(f"{base_url}/admin/catalog/product/?q=drywall+screw")
    shoot(page, "product-list.png")

    # A good import: check, look at the preview, apply.
    page.goto(f"{base_url}/admin/catalog/product/import/")
    page.set_input_files("#id_file", str(good_csv))
    page.click("#import-form input[type=submit]")
    page.wait_for_selector("#import-summary")
    shoot(page, "import-preview.png", full_page=True)
    page.click("input[value='Apply import']")
    page.wait_for_url(f"{base_url}/admin/catalog/product/")

    # A broken file: every problem with its line number, nothing written.
    page.goto(f"{base_url}/admin/catalog/product/import/")
    page.set_input_files("#id_file", str(broken_csv))
    page.click("#import-form input[type=submit]")
    page.wait_for_selector("#import-errors")
    shoot(page, "import-errors.png", full_page=True)

    # An edit in the back office, then the product page with variants and history.
    page.goto(f"{base_url}/admin/catalog/product/?q={BASE_SKU}")
    page.click(f"text={BASE_SKU}")
    page.wait_for_selector("#id_attributes")
    attributes = page.input_value("#id_attributes")
    page.fill("#id_attributes", attributes.rstrip().rstrip("}").rstrip() + ', "colour": "black"}')
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    page.goto(page.url)  # the page again, without the "changed successfully" message
    shoot(page, "product-page.png", full_page=True)


def take_mining(page, base_url: str) -> None:
    """The mining runs (with "Recompute now" and "Backtest"), one run, the suggestions, a backtest."""
    page.goto(f"{base_url}/admin/merchandising/miningrun/")
    page.wait_for_selector("#recompute-now")
    shoot_list(page, "mining-runs.png", full_page=True)  # two runs: no empty window below them

    # The first run: the one seed_demo made (the list is newest first).
    runs = page.locator("#result_list tbody tr th a")
    runs.last.click()
    page.wait_for_selector("fieldset.module")
    shoot(page, "mining-run.png", full_page=True)

    # The suggestions, narrowed down by two of the filters on the right.
    page.goto(f"{base_url}/admin/merchandising/suggestion/?status=pending&min_lift=2")
    page.wait_for_selector("#result_list")
    shoot(page, "suggestions.png")

    # A backtest at a cutoff: the configured ranking against the two baselines.
    page.goto(f"{base_url}/admin/merchandising/miningrun/backtest/")
    page.fill("#id_cutoff", BACKTEST_CUTOFF)
    page.click("#backtest-form input[type=submit]")
    page.wait_for_selector("#backtest-result", timeout=180_000)
    shoot(page, "backtest.png", full_page=True)


def take_orders(page, base_url: str) -> None:
    """The order list and one order with its lines."""
    page.goto(f"{base_url}/admin/orders/order/")
    page.wait_for_selector("#result_list")
    shoot(page, "order-list.png")

    # The newest order with five lines or more (the list is newest first).
    rows = page.locator("#result_list tbody tr")
    for index in range(rows.count()):
        if int(rows.nth(index).locator("td.field-line_count").inner_text()) >= 5:
            break
    rows.nth(index).locator("th a").click()
    page.wait_for_selector(".inline-group")
    shoot(page, "order-page.png", full_page=True)


def take_review(page, base_url: str) -> None:
    """The review queue worked with the keys, the exclusion dialog, a bulk preview with the keys help."""
    page.goto(f"{base_url}/review/?reset=1")  # the queue with no filters
    page.wait_for_selector("#review-list")
    # Approve the first row, reject the second as unrelated, move to the fourth, open its
    # sample orders and its reject menu.
    page.keyboard.press("j")
    page.keyboard.press("a")
    page.wait_for_selector(".review-row--approved")
    page.keyboard.press("r")
    page.keyboard.press("1")
    page.wait_for_selector(".review-row--rejected")
    page.keyboard.press("j")
    page.keyboard.press("o")
    page.wait_for_selector(".review-row.is-current .review-orders table, .review-row.is-current .review-orders p")
    page.keyboard.press("r")
    page.wait_for_timeout(300)
    shoot(page, "review-queue.png", height=1250)  # down to the end of the sample orders
    page.keyboard.press("Escape")

    # The exclusion dialog for the focused row: "never pair these categories", with the count
    # of pending suggestions the rule would reject, and a reason. Not saved.
    page.keyboard.press("x")
    page.wait_for_selector("#review-dialog[open] #exclude-count-value")
    page.check("#review-dialog input[value=category_pair]")
    page.wait_for_load_state("networkidle")
    page.fill(
        "#review-dialog textarea[name=reason]",
        "A drill is no suggestion on a battery's page; drills list their batteries as accessories.",
    )
    shoot(page, "review-exclude.png")
    page.click("#review-dialog [data-close-dialog]")

    # Bulk: tick three pending rows, preview their approval; and the keys help on top.
    for box in page.locator("#review-list .review-row--pending input.review-select").all()[:3]:
        box.check()
    page.click("#bulk-form button[value=approve]")
    page.wait_for_selector("#bulk-count")
    page.keyboard.press("?")
    page.wait_for_selector("#review-help", state="visible")
    shoot(page, "review-bulk-help.png")
    page.keyboard.press("Escape")


def take_dashboard(page, base_url: str) -> None:
    """The team dashboard, after the demo's decisions and the ones just taken in the queue."""
    page.goto(f"{base_url}/dashboard/")
    page.wait_for_selector("#dash-decisions")
    shoot(page, "dashboard.png", down_to="#dash-decisions")  # the figures and the decisions per day


def add_link(page, base_url: str, source: str, target: str, link_type: str, position: int | None = None) -> None:
    """Add a link by hand on the source's links page."""
    page.goto(f"{base_url}/products/{source}/links/")
    form = page.locator("form:has(input[name=target])")
    form.locator("input[name=target]").fill(target)
    form.locator("select[name=type]").select_option(link_type)
    if position is not None:
        form.locator("input[name=position]").fill(str(position))
    form.locator("button[type=submit]").click()
    page.wait_for_selector(".messagelist .success")


def take_links(page, admin, base_url: str) -> None:
    """The drill's links page with changes waiting for publish, and the Publish page listing them."""
    # By hand, published at once: three accessories and a substitute of the drill, the drill
    # as the substitute of a bigger one; and a linked product leaves the range.
    for target, link_type in [
        ("BAT-0001", "accessory"),
        ("BIT-0003", "accessory"),
        ("BIT-0004", "accessory"),
        ("BAT-0004", "substitute"),
    ]:
        add_link(page, base_url, DRILL, target, link_type)
    add_link(page, base_url, BIGGER_DRILL, DRILL, "substitute")
    page.goto(f"{base_url}/admin/catalog/product/?q={DISCONTINUED_SKU}")
    page.click(f"#result_list th a:text-is('{DISCONTINUED_SKU}')")
    page.select_option("#id_status", "discontinued")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    # The administrator turns on publishing in batches.
    admin.goto(f"{base_url}/publish/")
    admin.click("button:text('Turn batch publishing on')")
    admin.wait_for_selector("button:text('Turn batch publishing off')")

    # Changes that now wait: one more accessory at position 2, the cross-sells swapped, the
    # substitute retired.
    add_link(page, base_url, DRILL, "BIT-0001", "accessory", position=2)
    cross_sells = page.locator("form.links-reorder:has(input[name=type][value=cross_sell])")
    cross_sells.locator("tr.links-row .links-position-input").nth(1).fill("1")
    cross_sells.locator("button:text('Save order')").click()
    page.wait_for_selector(".messagelist .success")
    substitute = page.locator("tr.links-row:has(a:text-is('BAT-0004'))")
    substitute.locator("input[name=reason]").fill("other voltage")
    substitute.locator("button:text('Retire')").click()
    page.wait_for_selector(".messagelist .success")
    page.goto(f"{base_url}/products/{DRILL}/links/")  # without the message
    shoot(page, "links-product.png", full_page=True)

    admin.goto(f"{base_url}/publish/")
    admin.wait_for_selector("#publish-counts")
    shoot(admin, "links-publish.png", full_page=True)

    # The webshop preview of the drill: the current publish next to the next one (batch mode
    # is on and the changes above wait).
    page.goto(f"{base_url}/preview/?sku={DRILL}")
    page.wait_for_selector("pre")
    shoot(page, "preview.png", full_page=True)


def take_attention(env: dict[str, str], page, base_url: str) -> None:
    """Needs attention: stale evidence (after a stricter run), a discontinued target, a successor."""
    print(manage(env, "mine_suggestions", "--min-lift", STRICT_MIN_LIFT).strip().splitlines()[0])
    page.goto(f"{base_url}/attention/")
    page.wait_for_selector("#attention-count")
    shoot(page, "links-attention.png", full_page=True)


def take_conflict(page, admin, base_url: str) -> None:
    """Two people on one product: the administrator saves a new price; the specialist, on the
    form loaded before, changes the name and saves: refused, with what changed and by whom."""
    page.goto(f"{base_url}/admin/catalog/product/?q={CONFLICT_SKU}")
    page.click(f"#result_list th a:text-is('{CONFLICT_SKU}')")
    page.wait_for_selector("#id_unit_price")
    admin.goto(page.url)
    price = float(admin.input_value("#id_unit_price"))
    admin.fill("#id_unit_price", f"{price * 1.05:.2f}")
    admin.click("input[name=_continue]")
    admin.wait_for_selector(".messagelist .success")
    page.fill("#id_name", page.input_value("#id_name").replace(", collated on belt", ""))
    page.click("input[name=_continue]")
    page.wait_for_selector(".errornote")
    # Down to the price: the message, the specialist's name and the administrator's price.
    shoot(page, "edit-conflict.png", down_to="fieldset:has(#id_unit_price)")


def take_mfa(base_url: str) -> None:
    """The second factor (a server with MFA_REQUIRED): set up at the first sign-in, then the
    code after the password."""
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = sign_in(browser, base_url, MFA_USER, then=".mfa-qr svg")
        shoot(page, "mfa-setup.png", full_page=True)
        # The code an authenticator app would show, from the key the page shows.
        key = base64.b32decode(page.inner_text(".mfa-secret").replace(" ", ""))
        page.fill("#id_code", f"{TOTP(key).token():06d}")
        page.click("input[value=Confirm]")
        page.wait_for_selector(".mfa-codes")
        page.context.close()

        page = sign_in(browser, base_url, MFA_USER, then="input[value=Verify]")
        shoot(page, "mfa-code.png", full_page=True)
        browser.close()


def take_audit(page, base_url: str) -> None:
    """A product's History page (the audit trail): the demo seed, the import and the edit above."""
    page.goto(f"{base_url}/admin/catalog/product/?q={BASE_SKU}")
    page.click(f"#result_list th a:text-is('{BASE_SKU}')")
    page.click("a.historylink")
    page.wait_for_selector("#audit-history")
    shoot(page, "audit-history.png", full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765, help="and the next port for the second-factor server")
    parser.add_argument("--database", default="/tmp/docs.sqlite3", help="SQLite file; deleted and recreated")
    options = parser.parse_args()

    database = Path(options.database)
    database.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{database}",
        "LOG_LEVEL": "WARNING",
    }
    for variable in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        env.pop(variable, None)
    manage(env, "migrate", "--noinput", "-v0")
    print(manage(env, "seed_demo").strip())
    print(manage(env, "mine_suggestions").strip())
    IMG.mkdir(parents=True, exist_ok=True)

    with serve(env, options.port) as base_url, tempfile.TemporaryDirectory() as workdir:
        good_csv, broken_csv = import_files(env, Path(workdir))
        take(env, base_url, good_csv, broken_csv)
    with serve({**env, "MFA_REQUIRED": "true"}, options.port + 1) as base_url:
        take_mfa(base_url)


@contextlib.contextmanager
def serve(env: dict[str, str], port: int):
    """``runserver`` on 127.0.0.1:``port`` while the block runs; its base URL."""
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(PYTHON), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"{base_url}/healthz/")
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
