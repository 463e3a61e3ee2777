"""The blind evaluation set: a federal safety-net network's records, written without sight
of the recognisers or of the other six sets, and scored only for final reports.

Writing tradition. The notes come from one imagined network that serves veterans, tribal
nations and island and immigrant communities: VA CPRS notes (``LOCAL TITLE``, ``/es/``
signatures, ``LAST,FIRST M (L1234)`` banners, ``MAR 14, 2025@08:15`` stamps), Indian Health
Service charts from the Four Corners, coalfield clinics in Kentucky and West Virginia, Gulf
Coast hospitals, Guam and Puerto Rico (Chamorro and Spanish identification blocks), Hmong,
Somali, Haitian and Marshallese patients. Genres inside the eleven kinds: HL7 pipe segments,
fax cover sheets, prior-authorisation forms, EMS run sheets, hospice, school-nurse, jail
medical, dental and optometry notes, patients' texts without capitals, and dictation with
its artefacts (spelled names, "new paragraph", "[inaudible]").

Labelling conventions.

* A gold span covers the identifier's characters only: never a title (Dr., Mr., Ms.),
  credential (MD, RN, FNP-C), label word (DOB, MRN, SSN), relation word ("pt's dtr"),
  mask characters, a phone extension or a trailing period. The only leading punctuation
  kept is the opening bracket of a phone's area code or of a GS1 application identifier
  in a UDI, and the ``+`` of an international number or a HIBCC UDI.
* PERSON: patients, relatives, clinicians and other staff; full names, ``LAST,FIRST M``,
  first or last name alone, nicknames, initials (``D.N`` without its final period) and
  names spelled out in dictation (``Y-A-Z-Z-I-E``). Names that are also words (Rose, Will,
  Hunter, Faith, Bishop, Love) are labelled wherever they name a person.
* LOCATION: towns, counties, parishes, municipios, villages, neighbourhoods, Navajo
  chapters (the word "Chapter" included), birthplaces and former homes (countries, camps),
  and every US state and territory, abbreviated or written out. Diseases named after
  places (Rocky Mountain spotted fever) are not locations.
* ORGANIZATION: hospitals, clinics, pharmacies, nursing homes, employers and schools.
  Payers and programmes (Medicare, Medicaid, TRICARE, the VA, IHS as a service) and device
  or drug makers and brands are not labelled; their member numbers and serials are.
* ADDRESS: the street line (house number and street, PO box, rural route or highway
  contract box, calle and number); town, state and ZIP are separate spans. ZIP: five
  digits or ZIP+4.
* DATE: every date of a patient's care or life, full or partial (``03/2025``, ``Mar 2025``,
  ``3/14``, a year of birth or of service), in numeric, ISO, HL7, written-out, ordinal-word
  and Spanish forms. A time joined to a date without a space (CPRS ``@08:15``, HL7
  ``202503140815``) is inside the span; a time after a space is not labelled. Relative
  times ("POD 2", "x2 weeks") are not dates.
* AGE: ages of 90 and over only, as the number or number words (``93`` of ``93 y/o``,
  ``ninety-four`` of ``ninety-four-year-old``); younger ages are left unlabelled.
* SSN: a full number (dashed, spaced or run together) is labelled whole; a masked or
  partial one (``***-**-1234``, "last four 1234", the CPRS ``(N1234)``) on the digits
  shown only.
* MRN: every record number in a care system: chart, VA ICN, IHS health record number,
  lab, radiology and pharmacy accession or prescription numbers.
* HEALTH_PLAN: member, subscriber and beneficiary numbers (Medicare MBI, Medicaid, Plan
  Vital, TRICARE); group numbers are not labelled. ACCOUNT: billing accounts, encounters,
  visits, claims and prior-authorisation references.
* LICENSE: driver's licences, NPIs, DEA numbers, medical, nursing, pharmacy and EMS
  licences. VEHICLE: plates, tribal tags, boat registrations and VINs. DEVICE: serials,
  IMEIs and UDIs of implants, pumps, sensors, hearing aids and phones. BIOMETRIC: the
  reference number of a fingerprint, voiceprint, retina, iris, palm-vein or face template.
* PROFESSION: the patient's or a relative's occupation (not the clinicians' roles).
* PHONE, EMAIL, URL and IP_ADDRESS: every one in a note that has identifiers; PII-free
  notes hold none. A URL is labelled without trailing slash or punctuation.

Every eighth note is PII-free (75 of the default 600).
"""

from __future__ import annotations

from tutela.anonymize.eval.blind_clinical import CLINICAL
from tutela.anonymize.eval.blind_fillers import FILLERS, new_patient
from tutela.anonymize.eval.blind_templates import BODIES, HEADERS
from tutela.anonymize.eval.render import NoteStyle

SEED = 20261205
"""The set's default seed."""

STYLE = NoteStyle(
    headers=HEADERS,
    bodies=BODIES,
    clinical=CLINICAL,
    fillers=FILLERS,
    new_patient=new_patient,
    pii_free_every=8,
)
"""The blind set's templates, fillers and PII-free lines."""
