"""The invoice as a PDF, drawn with fpdf2 (pure Python; it brings fontTools and Pillow) from the same
document the HTML and text render (usage_ledger.service.documents.invoice_document).

Text is set in DejaVu Sans, embedded as a subset: the core PDF fonts only encode Latin-1, and team
names may be in any script. A character the font has no glyph for (an emoji, CJK) is drawn as an
empty box and logged by fpdf2; nothing that can be stored makes the PDF fail. Right-to-left runs
are put in visual order here (fpdf2's own bidi needs its text shaping, which needs the native
uharfbuzz); Arabic letters then show in their isolated forms, in the right order.
"""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

FONT = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSans-Subset.ttf"  # see fonts/README.md
FAMILY = "DejaVu"
INK, MUTED, RULE = (31, 41, 51), (97, 110, 124), (228, 231, 235)


def _clusters(text: str) -> list[str]:
    """Characters with the combining marks that follow them (so reversing keeps marks on their base)."""
    clusters: list[str] = []
    for char in text:
        if clusters and (unicodedata.combining(char) or char in "\u200d\ufe0f"):
            clusters[-1] += char
        else:
            clusters.append(char)
    return clusters


def visual(text: str) -> str:
    """A line in the order it is drawn, left to right: right-to-left runs reversed (Unicode bidi)."""
    if text.isascii():
        return text
    from fpdf.bidi import BidiParagraph, auto_detect_base_direction
    from fpdf.enums import TextDirection

    lines = []
    for line in text.split("\n"):
        base = auto_detect_base_direction(line)
        runs = [("".join(reversed(_clusters(run))) if direction == TextDirection.RTL else run)
                for run, direction in BidiParagraph(text=line, base_direction=base).get_bidi_fragments()]
        lines.append("".join(reversed(runs) if base == TextDirection.RTL else runs))
    return "\n".join(lines)


def invoice_pdf(document: dict[str, Any]) -> bytes:
    """An invoice, or a credit note (document["document"] == "credit_note") in the same layout."""
    from fpdf import FPDF, FontFace

    heading = FontFace(emphasis="", color=MUTED)  # one regular face: DejaVu Sans has no bold here

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_font(FAMILY, fname=str(FONT))
    pdf.set_title(f"{document['title']} - {document['team_name']}")
    pdf.set_subject(f"{document['title']} ({document['invoice_id']}) from {document['issuer_name']}")
    pdf.set_author(document["issuer_name"])
    pdf.set_creator("usage-ledger")
    pdf.add_page()
    width = pdf.epw

    def text(value: str, size: float = 10, color: tuple[int, int, int] = INK, height: float = 5.5) -> None:
        pdf.set_font(FAMILY, size=size)
        pdf.set_text_color(*color)
        pdf.multi_cell(width, height, visual(value), new_x="LMARGIN", new_y="NEXT", align="L")

    def gap(mm: float = 3) -> None:
        pdf.ln(mm)

    text(document["title"], size=22, height=10)
    text(f"Reference {document['invoice_id']}", size=9, color=MUTED)
    gap(5)

    # From | Billed to, side by side
    top, half = pdf.get_y(), (width - 8) / 2
    pdf.set_font(FAMILY, size=10)
    pdf.set_text_color(*INK)
    pdf.multi_cell(half, 5.5, visual("\n".join(["From", document["issuer_name"], *document["issuer_address"]])),
                   new_x="LMARGIN", new_y="NEXT", align="L")
    left_bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + half + 8, top)
    party = document.get("party_label", "Billed to")
    pdf.multi_cell(half, 5.5, visual("\n".join([party, document["team_name"], document["purchaser_email"]])),
                   new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_y(max(pdf.get_y(), left_bottom))
    gap(5)

    if document.get("document") == "credit_note":
        _credit_note_body(pdf, document, text, gap)
        return bytes(pdf.output())

    details = [("Issued", document["issued_on"]),
               ("Billing period", f"{document['period_start']} to {document['period_end']}"),
               ("Status", document["status_label"])]
    if document["paid_on"]:
        details.append(("Paid", document["paid_on"]))
    if document["next_attempt"]:
        details.append(("Next payment attempt", document["next_attempt"]))
    details.append((document.get("card_label", "Payment method"), document["card"]))
    pdf.set_font(FAMILY, size=10)
    with pdf.table(col_widths=(35, 65), first_row_as_headings=False, borders_layout="HORIZONTAL_LINES",
                   line_height=6) as table:
        for label, value in details:
            table.row((label, visual(value)))
    gap(6)

    text("Charges", size=13, height=7)
    pdf.set_font(FAMILY, size=10)
    with pdf.table(col_widths=(50, 14, 18, 18), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
                   borders_layout="HORIZONTAL_LINES", line_height=6, headings_style=heading) as table:
        table.row(("Item", "Units", "Unit price", "Amount"))
        for line in document["lines"]:
            table.row((visual(f"{line['description']}\n{document['unit_explanation']}"), line["units"],
                       line["unit_price"], line["amount"]))
        table.row(("Total", "", "", document["total"]))
        if document.get("credited"):
            table.row(("Credited", "", "", f"-{document['credited']}"))
            table.row(("Amount due", "", "", document["amount_due"]))
    if document["rollover"]:
        gap(2)
        text(f"{document['rollover']}.", size=9, color=MUTED)
    if document.get("credit_notes"):
        gap(6)
        text("Credit notes", size=13, height=7)
        pdf.set_font(FAMILY, size=10)
        with pdf.table(col_widths=(22, 26, 28, 14, 14), text_align=("LEFT", "LEFT", "LEFT", "RIGHT", "LEFT"),
                       first_row_as_headings=False, borders_layout="HORIZONTAL_LINES", line_height=6) as table:
            for note in document["credit_notes"]:
                table.row((f"Credit note {note['number']}", note["issued_on"], note["reason"], note["amount"],
                           note["refund"] or ""))
    if document["attempts"]:
        gap(6)
        text("Payment attempts", size=13, height=7)
        pdf.set_font(FAMILY, size=10)
        with pdf.table(col_widths=(20, 50, 30), first_row_as_headings=False, borders_layout="HORIZONTAL_LINES",
                       line_height=6) as table:
            for attempt in document["attempts"]:
                table.row((f"Attempt {attempt['number']}", attempt["when"], attempt["outcome"]))
    gap(6)
    text(f"Dates are in {document['zone']} time.", size=9, color=MUTED)
    pdf.set_font(FAMILY, size=9)
    pdf.set_text_color(*MUTED)
    pdf.cell(width, 5, "View this invoice online", link=document["view_url"], new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _credit_note_body(pdf: Any, document: dict[str, Any], text: Any, gap: Any) -> None:
    """A credit note's details and amount, under the invoice's header (usage_ledger.service.documents)."""
    pdf.set_font(FAMILY, size=10)
    with pdf.table(col_widths=(35, 65), first_row_as_headings=False, borders_layout="HORIZONTAL_LINES",
                   line_height=6) as table:
        for label, value in document["details"]:
            table.row((label, visual(value)))
    gap(6)
    text(f"Amount credited: {document['amount']}", size=13, height=7)
    gap(6)
    text(f"Dates are in {document['zone']} time.", size=9, color=MUTED)
    pdf.set_font(FAMILY, size=9)
    pdf.set_text_color(*MUTED)
    pdf.cell(pdf.epw, 5, "View the invoice online", link=document["view_url"], new_x="LMARGIN", new_y="NEXT")
