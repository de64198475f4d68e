"""English and Simplified Chinese (docs/i18n.md): every marked string has a
zh-Hans translation with the same placeholders, the user's language
(preference, Accept-Language, English), documents per recipient language,
and the CSV identical in every language."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.test import override_settings
from django.utils import translation

from accounts.models import Membership, User
from core.periods import Period
from invoices.statements import statement_email_send, statement_issue
from tests.support import PASSWORD, utc

from .test_statement import settle_worked_example, use_private_media

ROOT = Path(settings.BASE_DIR)
SKIP_DIRS = {".venv", "var", "tests", "benchmarks", "locale", ".git", "node_modules", "static", "docs"}
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sdr]|%[sdr]|\{[a-z_]+\}")


def _copy_sources(target: Path) -> None:
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if rel.parts and rel.parts[0] in SKIP_DIRS or any(p in ("locale", "__pycache__", "migrations")
                                                          for p in rel.parts):
            continue
        if path.is_file() and path.suffix in {".py", ".html", ".txt"}:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / rel)


def _po_entries(text: str):
    """(context, msgid, msgid_plural) of each entry of a .po file."""
    def joined(block: str) -> str:
        raw = "".join(re.findall(r'"(.*)"', block))
        return re.sub(r'\\(["n\\t])', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), raw)
    for entry in text.split("\n\n")[1:]:
        ctx = re.search(r'^msgctxt ((?:".*"\n?)+)', entry, re.M)
        mid = re.search(r'^msgid ((?:".*"\n?)+)', entry, re.M)
        plural = re.search(r'^msgid_plural ((?:".*"\n?)+)', entry, re.M)
        if mid:
            yield (joined(ctx.group(1)) if ctx else None, joined(mid.group(1)),
                   joined(plural.group(1)) if plural else None)


@pytest.fixture(scope="module")
def source_msgids(tmp_path_factory):
    """Every msgid marked in the templates and code, extracted by Django's
    makemessages from a copy of the sources (no catalog of the project is
    written)."""
    work = tmp_path_factory.mktemp("msgids")
    _copy_sources(work)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with override_settings(LOCALE_PATHS=[str(work / "locale")]):
            call_command("makemessages", locale=["zh_Hans"], extensions=["html", "txt", "py"],
                         no_location=True, verbosity=0)
    finally:
        os.chdir(cwd)
    return list(_po_entries((work / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po").read_text("utf-8")))


def _translated(context, msgid, plural) -> str:
    with translation.override("zh-hans"):
        if plural:
            return translation.npgettext(context, msgid, plural, 2) if context else translation.ngettext(
                msgid, plural, 2)
        return translation.pgettext(context, msgid) if context else translation.gettext(msgid)


# Strings that read the same in Chinese (brand names, units).
SAME_IN_CHINESE = {"PayPal", "HTTP API", "GB"}


def test_every_marked_string_has_a_zh_hans_translation(source_msgids):
    assert len(source_msgids) > 300
    missing = [msgid for context, msgid, plural in source_msgids
               if msgid not in SAME_IN_CHINESE and _translated(context, msgid, plural) == msgid]
    assert missing == []


def test_translations_keep_every_placeholder(source_msgids):
    broken = []
    for context, msgid, plural in source_msgids:
        translated = _translated(context, msgid, plural)
        if sorted(set(PLACEHOLDER.findall(msgid))) != sorted(set(PLACEHOLDER.findall(translated))):
            broken.append((msgid, translated))
    assert broken == []


def test_the_placeholder_check_sees_a_broken_translation():
    assert sorted(set(PLACEHOLDER.findall("Pay %(amount)s"))) != sorted(set(PLACEHOLDER.findall("支付 %(amout)s")))


def test_period_labels_per_language():
    assert Period(2026, 10).label() == "October 2026"
    with translation.override("zh-hans"):
        assert Period(2026, 10).label() == "2026年10月"


# --- the language of a request -------------------------------------------------

@pytest.mark.django_db
def test_english_by_default_and_accept_language_chinese(client, acme):
    client.force_login(User.objects.get(email="owner@acme.example"))
    english = client.get("/billing/")
    assert english["Content-Language"] == "en"
    assert "Funds balance" in english.content.decode()
    chinese = client.get("/billing/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert chinese["Content-Language"] == "zh-hans"
    page = chinese.content.decode()
    assert "账户余额" in page and "应还总额" in page and '<html lang="zh-hans">' in page


@pytest.mark.django_db
def test_set_language_saves_the_preference_which_beats_accept_language(client, acme):
    client.force_login(User.objects.get(email="owner@acme.example"))
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/billing/"})
    assert response.status_code == 302 and response["Location"] == "/billing/"
    assert User.objects.get(email="owner@acme.example").language == "zh-hans"
    client.cookies.clear()  # another browser: the saved preference still applies
    client.force_login(User.objects.get(email="owner@acme.example"))
    page = client.get("/billing/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "费用中心" in page


@pytest.mark.django_db
def test_an_unknown_language_is_ignored(client, acme):
    client.force_login(User.objects.get(email="owner@acme.example"))
    response = client.post("/i18n/setlang/", {"language": "xx", "next": "/billing/"})
    assert response.status_code == 302
    assert User.objects.get(email="owner@acme.example").language == ""


# --- documents ---------------------------------------------------------------------

@pytest.fixture
def worked_bill(acme, settings, tmp_path):
    use_private_media(settings, tmp_path)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settle_worked_example(acme)


@pytest.mark.django_db
def test_statement_is_emailed_once_per_recipient_language(worked_bill):
    account = worked_bill.account
    books = User.objects.create_user("books@acme.example", PASSWORD, language="zh-hans")
    Membership.objects.create(user=books, account=account, role="accountant")
    statement = statement_issue(bill=worked_bill, now=utc(2026, 11, 1, 8))
    outcome = statement_email_send(statement=statement, now=utc(2026, 11, 5, 2))
    assert outcome.sent and sorted(outcome.recipients) == ["books@acme.example", "owner@acme.example"]
    by_recipient = {tuple(m.to): m for m in mail.outbox}
    assert set(by_recipient) == {("owner@acme.example",), ("books@acme.example",)}
    english, chinese = by_recipient[("owner@acme.example",)], by_recipient[("books@acme.example",)]
    assert english.subject == "Aurora SendCloud statement AUR-2026-000001 for October 2026: 1.72 USD due"
    assert chinese.subject == "Aurora SendCloud 2026年10月 对账单 AUR-2026-000001：应还 1.72 USD"
    assert "邮件推送：费用 5.40，已付 5.00，未付 0.40（已欠费）" in chinese.body
    assert english.attachments[0][1] != chinese.attachments[0][1]  # each PDF in its language


@pytest.mark.django_db
def test_the_archived_pdf_is_in_the_account_document_language(worked_bill):
    account = worked_bill.account
    account.document_language = "zh-hans"
    account.save()
    with translation.override("en"):
        statement = statement_issue(bill=worked_bill, now=utc(2026, 11, 1, 8))
    pdf = statement.pdf.open("rb").read()
    from invoices.statements import statement_document

    _, again = statement_document(statement=statement, now=statement.issued_at, language="zh-hans")
    _, english = statement_document(statement=statement, now=statement.issued_at, language="en")
    assert pdf == again and pdf != english


@pytest.mark.django_db
def test_csv_is_byte_identical_in_every_language(client, worked_bill):
    client.force_login(User.objects.get(email="owner@acme.example"))
    english = b"".join(client.get("/billing/export.csv?period=2026-10").streaming_content)
    chinese = b"".join(client.get("/billing/export.csv?period=2026-10",
                                  HTTP_ACCEPT_LANGUAGE="zh-hans").streaming_content)
    assert english == chinese and b"Overdrawn" in english


def _po_translations(path: Path) -> dict[tuple[str | None, str], str]:
    """(context, msgid) → first msgstr of each translated entry of a .po file."""
    def joined(block: str) -> str:
        return "".join(re.findall(r'"(.*)"', block))
    out = {}
    for entry in path.read_text("utf-8").split("\n\n"):
        ctx = re.search(r'^msgctxt ((?:".*"\n?)+)', entry, re.M)
        mid = re.search(r'^msgid ((?:".*"\n?)+)', entry, re.M)
        text = re.search(r'^msgstr(?:\[0\])? ((?:".*"\n?)+)', entry, re.M)
        if mid and text and joined(mid.group(1)):
            out[(joined(ctx.group(1)) if ctx else None, joined(mid.group(1)))] = joined(text.group(1))
    return out


def test_no_string_is_translated_two_ways_in_two_catalogs():
    """The project catalog (LOCALE_PATHS) shadows the app catalogs: a msgid
    both translate differently shows the project's, silently (the funds
    ledger's "Date" read 账期, the summary's period filter, not 时间)."""
    catalogs = {path.relative_to(ROOT).parts[0]: _po_translations(path)
                for path in sorted(ROOT.glob("*/zh_Hans/LC_MESSAGES/django.po"))
                + sorted(ROOT.glob("*/locale/zh_Hans/LC_MESSAGES/django.po"))}
    assert "locale" in catalogs and len(catalogs) >= 3
    names = sorted(catalogs)
    conflicts = [(a, b, key) for i, a in enumerate(names) for b in names[i + 1:]
                 for key in catalogs[a].keys() & catalogs[b].keys() if catalogs[a][key] != catalogs[b][key]]
    assert conflicts == []
