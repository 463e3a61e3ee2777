"""The fresh held-out evaluation set: a second set kept out of development.

The first held-out set (:mod:`.heldout`) was scored and its misses read, so it no longer
counts as unseen. This set was written and committed before any later detector change,
and only the final report scores it. Its phrasings are its own: SOAP notes, HL7-style
segments, dictated transcriptions ("This is ... dictating"), fax cover sheets, chart
abstracts with "Name / DOB / Sex" rows, lower-case patient messages; its values and
formats come from :mod:`.fresh_values`; its PII-free notes (every eighth) carry section
headings, eponyms and drug names as real notes do; it is drawn with its own seed.
"""

from __future__ import annotations

from tutela.anonymize.eval.fresh_values import fillers, new_patient
from tutela.anonymize.eval.render import NoteKind, NoteStyle

K = NoteKind

HEADERS: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "PID|1||{MRN}||{PT_HL7}||{DATE}|\nHOSPITAL COURSE SUMMARY",
        "This is {CLIN} dictating the discharge summary on {PT}, medical record {MRN}.",
        "Name: {PT_LF}\nDOB: {DATE}\nSex: {SEX}\nAdmitted: {DATE}",
    ),
    K.REFERRAL: (
        "FAX COVER -- {HOSP}\nTo: {CLIN}  Fax: {PHONE}\nRe: {PT}  DOB {DATE}",
        "{DATE}\n\nTo whom it may concern,\n\nRE: {PT_LF} (chart {MRN})",
    ),
    K.PORTAL: (
        "Inbox > Patient Advice Request > {PT_LF} > {DATE}",
        "New message from {PT_LOWER} ({EMAIL})",
    ),
    K.LAB: (
        "OBR|1|||CBC W DIFF|||{DATE}\nPID|1||{MRN}||{PT_HL7}",
        "Name: {PT_LF}    Acct: {ACCT}    Drawn: {DATE}",
    ),
    K.RADIOLOGY: (
        "EXAM: MRI brain w/wo contrast\nPATIENT: {PT_LF}\nMRN: {MRN}\nDATE OF SERVICE: {DATE}",
        "{HOSP} Imaging Services. {PT}, chart number {MRN}, seen {DATE}.",
    ),
    K.PHARMACY: (
        "Clinical pharmacy progress note -- {DATE}\nPatient: {PT} (MRN {MRN})",
        "Rx intake: {PT_LF}  DOB {DATE}  Ph {PHONE}",
    ),
    K.NURSING: (
        "S: {PT_FIRST} states pain is better today. ({DATE})",
        "NURSING NOTE  {DATE}  Pt: {PT_LF}  MRN {MRN}  Rm 512",
    ),
    K.SOCIAL_WORK: (
        "Case management note -- {DATE}\nClient name: {PT}\nChart #: {MRN}",
        "Met with {PT} and {PRONOUN_POSS} {KIN} {RELATIVE} on {DATE}.",
    ),
    K.TELEHEALTH: (
        "Virtual Care Encounter | {PT_LF} | {DATE} | {URL}",
        "This visit was conducted via two-way video with {PT} on {DATE}.",
    ),
    K.DEVICE_CLINIC: (
        "CIED interrogation -- {PT_LF} -- MRN {MRN} -- {DATE}",
        "Pacemaker follow-up for {PT}, implanted at {HOSP} on {DATE}.",
    ),
    K.ED: (
        "Triage {DATE} 0214 -- {PT_LF} -- {AGE} y -- MRN {MRN}",
        "EMERGENCY MEDICINE NOTE\nPatient: {PT}\nArrival: {DATE} via EMS",
    ),
}

BODIES: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "The patient is a {AGE}-yr-old {JOB} who presented with a GI bleed.",
        "{PRONOUN_CAP} lives with {PRONOUN_POSS} {KIN}, {RELATIVE}, at {STREET}, {CITY_ZIP}.",
        "Hospital account (HAR) {ACCT}. Primary payer member ID {PLAN}.",
        "Please forward a copy to {CLIN} at {HOSP}, fax {PHONE}.",
        "{PRONOUN_CAP} emigrated from {COUNTRY} and prefers a Tigrinya interpreter.",
        "Scheduled: GI clinic on {DATE} with {CLIN}.",
        "Home services arranged through {ORG} for wound care.",
    ),
    K.REFERRAL: (
        "{TITLE} {PT_LAST} is {AGE} years of age and was last seen here on {DATE}.",
        "{PRONOUN_CAP} recently retired as a {JOB} with {ORG}.",
        "Old Medicare number {PLAN} is still on the referral form.",
        "Contact me directly at {EMAIL} or {PHONE}.",
        "{CLIN}\nState license {LIC}",
        "Mailing address: {STREET}, {CITY_ZIP}.",
        "Imaging CDs from {HOSP} are enclosed.",
    ),
    K.PORTAL: (
        "hi its {PT_FIRST} again. my grandson {RELATIVE_FIRST} set up this account for me",
        "i am {AGE} and my legs swell every night",
        "pls call my landline {PHONE} not the cell",
        "we moved in with my son in {CITY}, new address {STREET}",
        "the pharmacy at {ORG} said my insurance {PLAN} expired?",
        "this is {RELATIVE}, {PT_FIRST}'s neighbor, writing for her",
        "-- Reply from {CLIN}: Thanks, I've sent the order.",
    ),
    K.LAB: (
        "PV1|1|O|{HOSP}||||{CLIN}",
        "Critical potassium read back by {CLIN} on {DATE} at 0342.",
        "Sendout to {ORG}, {CITY}; client account {ACCT}.",
        "Pt age {AGE} -- reference ranges for ages 90+ applied.",
        "Questions: lab client services {PHONE}.",
        "Courier dropped specimen from {STREET} draw station.",
    ),
    K.RADIOLOGY: (
        "CLINICAL HISTORY: {AGE} y/o with new confusion.",
        "COMPARISON: MRI {DATE}, outside films from {HOSP}.",
        "Implant card reviewed: neurostimulator UDI {DEV}, MR conditional.",
        "Preliminary read called to {CLIN} ({PHONE}) at 2215.",
        "Electronically signed: {CLIN}, {DATE}.",
        "Study link: {URL}",
    ),
    K.PHARMACY: (
        "Prescriber {CLIN}, DEA {LIC}, called in the change.",
        "Patient picks up at {ORG} on {STREET}.",
        "ID shown at pickup: driver's license {LIC}.",
        "Payer: plan ID {PLAN}, pharmacy account {ACCT}.",
        "Spoke with {PT_FIRST}'s {KIN} {RELATIVE} on {DATE}.",
        "{AGE}-year-old on warfarin; fall risk reviewed.",
    ),
    K.NURSING: (
        "Visitor: {KIN} {RELATIVE}, phone {PHONE}, updated on plan.",
        "Pt, {AGE}, disoriented to time overnight; reoriented by staff.",
        "Home feeding pump from {ORG}, serial {DEV}, sent home with family.",
        "Car parked in ED lot, plate {PLATE}; keys in belongings bag.",
        "Palm-vein enrollment {BIO} completed for the OR check-in kiosk.",
        "Report given to {CLIN} at {DATE} shift change.",
    ),
    K.SOCIAL_WORK: (
        "Client, age {AGE}, is a former {JOB} receiving SSDI.",
        "SSA verification: Social Security no. {SSN}.",
        "Lives at {STREET}, {CITY}; landlord is {ORG}.",
        "Truck (VIN {VIN}, tag {PLATE}) needed for dialysis transport.",
        "Referral emailed to {RELATIVE} at {EMAIL}.",
        "Born in {COUNTRY}; arrived in {CITY} {DATE}.",
        "Medicaid plan {PLAN}; case number {ACCT}.",
    ),
    K.TELEHEALTH: (
        "Patient location: {STREET}, {CITY_ZIP}. Provider location: clinic.",
        "Client IP {IP}; session encrypted.",
        "{KIN_CAP} {RELATIVE} ({PHONE}) joined for the last 10 minutes.",
        "Identity verified by facial recognition template {BIO}.",
        "Next e-visit {DATE}; reminder to {EMAIL}.",
        "Patient works night shifts as a {JOB}.",
    ),
    K.DEVICE_CLINIC: (
        "Generator serial {DEV}; atrial lead {DEV}.",
        "Bedside monitor network address {DEV} registered to the patient.",
        "Transmissions arrive from {IP}.",
        "{TITLE} {PT_LAST} ({AGE}) denies syncope since the last check on {DATE}.",
        "Manufacturer rep {RELATIVE}, {ORG}, phone {PHONE}.",
        "Voice biometric reference {BIO} used for phone check-ins.",
    ),
    K.ED: (
        "MVC, restrained driver of a sedan, plate {PLATE}, VIN {VIN} per EMS.",
        "{KIN_CAP} {RELATIVE} at bedside, contact {PHONE}.",
        "Works as a {JOB} for {ORG}.",
        "Wallet: license {LIC}, insurance card {PLAN}.",
        "Social Security # {SSN} given for registration.",
        "Home address per registration: {STREET}, {CITY}.",
        "Transfer accepted by {CLIN} at {HOSP}.",
    ),
}

CLINICAL: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "HOSPITAL COURSE:",
        "Hgb nadir 6.8, transfused 2 units PRBC; EGD showed a Forrest IIa ulcer, clipped.",
        "Started pantoprazole 40 mg IV BID, transitioned to PO on day 3.",
        "H. pylori serology positive; triple therapy for 14 days.",
        "Blatchford score 12 on admission.",
        "DISCHARGE CONDITION: stable. ACTIVITY: as tolerated.",
        "Patient seen and examined on the day of discharge; >30 min spent.",
    ),
    K.REFERRAL: (
        "Reason for referral: progressive dyspnea on exertion, NYHA class III.",
        "Echo: LVEF 35%, moderate MR, RVSP 48 mmHg.",
        "Medications: lisinopril 10 mg daily, metoprolol succinate 50 mg daily.",
        "Please evaluate for Whipple procedure candidacy.",
        "Thank you for your assistance in the care of this patient.",
    ),
    K.PORTAL: (
        "is it normal to feel dizzy after the new water pill",
        "my blood sugar was 68 at 3am and I felt shaky",
        "do i still need the Lovenox shots after this week",
        "ok thank u, will wait for the nurse to call back",
        "the incision is a little red but no drainage",
    ),
    K.LAB: (
        "Specimen: whole blood, EDTA.",
        "WBC 3.1 L, Hgb 9.4 L, MCV 104 H, Plt 88 L.",
        "Peripheral smear: macrocytosis, hypersegmented neutrophils.",
        "B12 142 pg/mL (L); folate 9.8 ng/mL.",
        "Coombs direct negative. Haptoglobin 12 mg/dL (L).",
        "Comment: results verified by repeat analysis.",
    ),
    K.RADIOLOGY: (
        "FINDINGS:",
        "Scattered T2/FLAIR hyperintensities in the periventricular white matter.",
        "No restricted diffusion. No mass effect or midline shift.",
        "IMPRESSION: Chronic small vessel ischemic disease (Fazekas grade 2).",
        "Incidental 6 mm pineal cyst; no follow-up needed.",
        "ACR appropriateness criteria reviewed.",
    ),
    K.PHARMACY: (
        "Assessment: supratherapeutic INR 4.6 without bleeding.",
        "Plan: hold warfarin x1 dose, resume at 5 mg daily, recheck INR Friday.",
        "Interaction flagged: amiodarone increases warfarin effect.",
        "Renal dosing: CrCl 42 mL/min; gabapentin reduced to 300 mg BID.",
        "Beers criteria reviewed; diphenhydramine discontinued.",
    ),
    K.NURSING: (
        "O: T 37.4, P 88, R 18, BP 132/76, SpO2 95% RA.",
        "A: Impaired mobility related to hip fracture.",
        "P: Continue q2h turns, PT/OT to follow, fall precautions.",
        "Foley removed at 0600; voided 350 mL at 1000.",
        "CIWA score 4; no PRN lorazepam needed.",
        "Skin intact; heels offloaded.",
    ),
    K.SOCIAL_WORK: (
        "Assessment:",
        "Patient is alert, oriented, and able to participate in planning.",
        "Barriers to discharge: stairs at home, limited transportation.",
        "Plan: apply for Meals on Wheels; PT recommends rolling walker.",
        "Columbia suicide screen negative.",
    ),
    K.TELEHEALTH: (
        "Chief complaint: medication follow-up.",
        "Patient appears well on video, speaking in full sentences.",
        "Home glucose log reviewed: fasting 110-140.",
        "Plan: increase metformin to 1000 mg BID; A1c in 3 months.",
        "Verbal consent for telehealth obtained.",
    ),
    K.DEVICE_CLINIC: (
        "Underlying rhythm: sinus bradycardia 42 bpm.",
        "Atrial sensing 2.8 mV; ventricular threshold 1.0 V @ 0.4 ms.",
        "Battery at ERI? No; longevity 6.2 years.",
        "Mode switch episodes: 3, total duration 14 minutes.",
        "Programmed changes: none. Next remote in 91 days.",
    ),
    K.ED: (
        "HPI: chest pain x 2 hours, pressure-like, radiating to left arm.",
        "HEART score 6; troponin 0.04 then 0.11.",
        "Exam: Murphy's sign negative, no CVA tenderness.",
        "MDM: ACS ruled in; cardiology consulted, heparin drip started.",
        "Disposition: admit to telemetry.",
        "Tetanus up to date; Td not given.",
    ),
}

STYLE = NoteStyle(
    headers=HEADERS,
    bodies=BODIES,
    clinical=CLINICAL,
    fillers=fillers(),
    new_patient=new_patient,
    pii_free_every=8,
)
SEED = 904211
"""The fresh set's seed (the development and first held-out sets use others)."""
