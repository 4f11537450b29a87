"""The judge pages as a visitor sees them, in Chromium: from the navigation to an audit's plots."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from judges.models import Audit

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_visitor_finds_the_demo_judge_audit_and_its_plots(live_server, page, shot):
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo_judge", stdout=StringIO())
    audit = Audit.objects.get()
    page.goto(live_server.url + "/")
    page.click("nav >> text=Judges")
    page.wait_for_url("**/judges")
    assert page.locator("table.judges tbody tr").count() == 1
    shot(page, "01-judges")
    page.click(f"text=audit {audit.pk}")
    page.wait_for_url(f"**/judges/audits/{audit.pk}")
    # Four inline plots (position, length curve, agreement matrix, perturbations), each drawn with a size.
    plots = page.locator("figure.plot svg")
    assert plots.count() == 4
    for i in range(4):
        box = plots.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
    rate = audit.report["judges"]["scripted-demo"]["position"]["first_position_rate"]
    assert f"{rate['value']:.3f} [{rate['ci_low']:.3f}, {rate['ci_high']:.3f}]" in page.inner_text("main")
    shot(page, "02-audit")
    page.click("h1 >> text=scripted-demo")
    page.wait_for_url("**/judges/scripted-demo")
    assert page.locator("figure.plot svg").count() == 1
    shot(page, "03-judge")
