"""Money in integer minor units: ISO 4217 currencies and their exponents, and display formatting."""
from __future__ import annotations

from decimal import Decimal

# ISO 4217 active codes with their minor-unit exponent (2 unless listed otherwise)
_EXPONENT_0 = "bif clp djf gnf isk jpy kmf krw pyg rwf ugx uyi vnd vuv xaf xof xpf"
_EXPONENT_3 = "bhd iqd jod kwd lyd omr tnd"
_EXPONENT_4 = "clf uyw"
_EXPONENT_2 = (
    "aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob bov brl bsd btn bwp byn bzd "
    "cad cdf che chf chw cny cop cou crc cuc cup cve czk dkk dop dzd egp ern etb eur fjd fkp gbp gel "
    "ghs gip gmd gtq gyd hkd hnl htg huf idr ils inr irr jmd kes kgs khr kpw kyd kzt lak lbp lkr lrd "
    "lsl mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn mxv myr mzn nad ngn nio nok npr nzd pab pen "
    "pgk php pkr pln qar ron rsd rub sar sbd scr sdg sek sgd shp sle sll sos srd ssp stn svc syp szl "
    "thb tjs tmt top try ttd twd tzs uah usd usn uyu uzs ved ves wst xcd xcg yer zar zmw zwg zwl"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    **{code: 2 for code in _EXPONENT_2.split()},
    **{code: 0 for code in _EXPONENT_0.split()},
    **{code: 3 for code in _EXPONENT_3.split()},
    **{code: 4 for code in _EXPONENT_4.split()},
}


def is_currency(code: str) -> bool:
    return code in CURRENCY_EXPONENTS


def format_minor_units(amount: int, currency: str) -> str:
    """3750 usd -> '37.50 USD'; 500 jpy -> '500 JPY' (exact, no floats)."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    value = Decimal(amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))
    return f"{value:,} {currency.upper()}"
