"""The development evaluation set: the notes the recognisers are tuned and tested on.

Eleven note kinds, phrased differently from the held-out set (:mod:`.heldout`): labelled
fields ("Pt name:", "Next of kin:", "Occupation:"), clinic letters, nursing flow sheets,
terse ED shorthand. Values and formats come from :mod:`.development_values`.
"""

from __future__ import annotations

from tutela.anonymize.eval.development_values import fillers, new_patient
from tutela.anonymize.eval.render import NoteKind, NoteStyle

K = NoteKind

HEADERS: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "Pt name: {PT}\nMRN: {MRN}\nAdmission date: {DATE}\nDischarge date: {DATE}",
        "{HOSP} -- Discharge Summary\nPatient Name - {PT_LF}; Medical record number {MRN}",
    ),
    K.REFERRAL: (
        "From: {CLIN}, {HOSP}\nTo: {CLIN}\nRe: {PT}, DOB {DATE}, MRN {MRN}",
        "Referral request dated {DATE} for {PT} (medical record {MRN})",
    ),
    K.PORTAL: (
        "MyChart message | Sender: {PT} | Received {DATE}",
        "Patient message ({DATE}) from {PT_FIRST} {PT_LAST}:",
    ),
    K.LAB: (
        "Patient: {PT_LF}   MRN#{MRN}   Collected {DATE}",
        "Lab results for {PT}, DOB {DATE}, MRN: {MRN}",
    ),
    K.RADIOLOGY: (
        "Patient: {PT}  MRN: {MRN}  DOS: {DATE}  Ordering: {CLIN}",
        "{HOSP} Department of Radiology -- {PT_LF} -- MRN {MRN}",
    ),
    K.PHARMACY: (
        "Medication reconciliation for {PT} (MRN {MRN}) on {DATE}",
        "Pharmacist note -- patient {PT_LF}, DOB {DATE}",
    ),
    K.NURSING: (
        "Nursing admission assessment: {PT}, MRN {MRN}, {DATE}",
        "Shift report {DATE}: pt {PT_LF}",
    ),
    K.SOCIAL_WORK: (
        "Social work consult -- patient {PT} -- MRN {MRN} -- {DATE}",
        "Psychosocial assessment for {PT_LF} completed {DATE}.",
    ),
    K.TELEHEALTH: (
        "Telemedicine encounter {DATE}: {PT} (MRN {MRN}) seen by video.",
        "Video visit with {PT} on {DATE}; visit link {URL}",
    ),
    K.DEVICE_CLINIC: (
        "Device clinic visit {DATE}\nPatient: {PT}    MRN: {MRN}",
        "ICD check for {PT_LF} on {DATE}",
    ),
    K.ED: (
        "ED note {DATE} -- {PT}, MRN {MRN}",
        "EMERGENCY DEPARTMENT -- {HOSP} -- Pt: {PT_LF}",
    ),
}

BODIES: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "{PT} is a {AGE}-year-old {JOB} admitted for community-acquired pneumonia.",
        "Discharging physician: {CLIN}.",
        "Next of kin: {RELATIVE} (son), phone {PHONE}.",
        "Disposition: discharged to {ORG}, {CITY}.",
        "Address on file: {STREET}, {CITY_ZIP}.",
        "Insurance: health plan ID {PLAN}; billing account {ACCT}.",
        "{PRONOUN} was born in {COUNTRY} and speaks limited English.",
        "Follow-up at {HOSP} with {CLIN} on {DATE}.",
    ),
    K.REFERRAL: (
        "Thank you for seeing {TITLE} {PT_LAST}, aged {AGE}, for evaluation of syncope.",
        "{PRONOUN} is employed as a {JOB} at {ORG}.",
        "Please call our office at {PHONE} (fax {PHONE}) with questions.",
        "Sincerely, {CLIN}, NPI {NPI}",
        "The patient lives at {STREET}, {CITY_ZIP}.",
        "Records from {HOSP} dated {DATE} are enclosed.",
        "Prior authorization under member ID {PLAN}.",
    ),
    K.PORTAL: (
        "Hello, my daughter {RELATIVE} will bring me in, her number is {PHONE}.",
        "please email me at {EMAIL} instead of calling",
        "I'm {AGE} yo and the stairs at your building are hard for me.",
        "my new address is {STREET}, {CITY_ZIP}",
        "the bill says account {ACCT}, I already paid it on {DATE}",
        "Sent from my phone (IP {IP})",
        "Response: Hi {PT_FIRST}, {CLIN} reviewed your message.",
    ),
    K.LAB: (
        "Ordering provider: {CLIN}; copy to {CLIN}.",
        "Critical value phoned to {RELATIVE}, RN, at {PHONE} on {DATE}.",
        "Performed at {HOSP} laboratory, {STREET}, {CITY_ZIP}.",
        "Patient age: {AGE} years.",
        "Account #: {ACCT}",
        "Verified by {CLIN} on {DATE}.",
    ),
    K.RADIOLOGY: (
        "History: {AGE} yo female with hip pain after fall.",
        "Comparison: {DATE} exam at {HOSP}.",
        "Pacemaker present; device serial number {DEV} confirmed MR-conditional.",
        "Report electronically signed by {CLIN} on {DATE}.",
        "Findings communicated to {CLIN} by telephone {PHONE}.",
        "Images available at {URL}.",
    ),
    K.PHARMACY: (
        "Prescriber {CLIN} (DEA #{DEA}, NPI {NPI}).",
        "Filled at {ORG}, {CITY}.",
        "Picked up by {RELATIVE}; ID checked: driver's license {LIC}.",
        "Medicare beneficiary ID {PLAN}; account {ACCT}.",
        "Patient, age {AGE}, counseled on {DATE}.",
        "Call back at {PHONE} if side effects.",
    ),
    K.NURSING: (
        "Pt is a {AGE} y.o. {JOB}; husband {RELATIVE} at bedside.",
        "Emergency contact updated: {RELATIVE}, cell {PHONE}.",
        "Insulin pump serial # {DEV} kept at bedside.",
        "Patient valuables: driver license {LIC}, car keys (plate {PLATE}).",
        "Transfer to {HOSP} arranged for {DATE}.",
        "Fingerprint ID {BIO} enrolled for medication dispensing cabinet.",
    ),
    K.SOCIAL_WORK: (
        "Occupation: {JOB} (retired from {ORG}).",
        "Patient is {AGE} years old and lives alone at {STREET}, {CITY}.",
        "Born in {COUNTRY}; moved to {CITY} in {DATE}.",
        "Social Security number {SSN} used for the disability application.",
        "Vehicle: VIN {VIN}, plate {PLATE}, impounded {DATE}.",
        "Referred to {ORG}; contact {RELATIVE} at {EMAIL}.",
        "Medicaid number {PLAN} confirmed active.",
    ),
    K.TELEHEALTH: (
        "Patient located at home, {STREET}, {CITY_ZIP}, at time of visit.",
        "Session IP address {IP}.",
        "Wife {RELATIVE} assisted with the camera.",
        "Follow-up video visit {DATE}; instructions emailed to {EMAIL}.",
        "Identity confirmed by voice ID {BIO} and date of birth {DATE}.",
        "Patient works as a {JOB} and is calling from work.",
    ),
    K.DEVICE_CLINIC: (
        "ICD implanted {DATE} at {HOSP}; generator serial number {DEV}.",
        "Atrial lead SN {DEV}, ventricular lead SN {DEV}.",
        "Bedside monitor IMEI {DEV} registered.",
        "{TITLE} {PT_LAST} is a {AGE}-year-old; daughter {RELATIVE} present.",
        "Manufacturer rep {RELATIVE} reachable at {PHONE}.",
        "Transmission received from {IP} on {DATE}.",
    ),
    K.ED: (
        "{AGE} yo M restrained driver in MVC, vehicle VIN {VIN}, license plate {PLATE}.",
        "Trooper {RELATIVE} at bedside.",
        "Pt works as a {JOB} for {ORG}.",
        "ID on file: driver's license {LIC}; insurance ID {PLAN}.",
        "Brother {RELATIVE} can be reached at {PHONE}.",
        "Home address: {STREET}, {CITY}.",
        "Transferred from {HOSP} by ambulance.",
    ),
}

CLINICAL: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "Discharge diagnosis: CAP (J18.9), resolved; AKI on CKD 3a (N17.9, N18.31).",
        "Completed ceftriaxone 1 g IV daily x 3 days, then cefpodoxime 200 mg PO BID x 4 days.",
        "Hgb 9.4 g/dL at discharge; transfused 1 unit PRBC on hospital day 2.",
        "Activity as tolerated; diet 2 g sodium, 1.5 L fluid restriction.",
        "Pending at discharge: blood cultures x2 (no growth at 48 h).",
        "Full code.",
    ),
    K.REFERRAL: (
        "Holter showed 3 pauses, longest 3.4 s, and first-degree AV block (PR 240 ms).",
        "Known Wolff-Parkinson-White pattern on prior ECG.",
        "Meds: metoprolol succinate 25 mg daily, amlodipine 5 mg daily.",
        "Echo: LVEF 55-60%, grade I diastolic dysfunction.",
        "Allergies: penicillin (hives), sulfa.",
    ),
    K.PORTAL: (
        "is it ok to take 1/2 of the 50 mg pill?",
        "my weight went up 3 lbs in 2 days",
        "The Lasix makes me go every 20 min, can I take it at 2 pm instead",
        "glucose 98 fasting, 145 at bedtime",
        "Thanks so much!!",
    ),
    K.LAB: (
        "Neutrophils 2 x 10^9/L, lymphocytes 0.9 x 10^9/L, eosinophils 0.3 x 10^9/L.",
        "Sodium 129 (L), potassium 5.4 (H), chloride 96, bicarbonate 19, anion gap 14.",
        "Troponin I hs 34 ng/L -> 61 ng/L (delta 27).",
        "Culture: MRSA, vancomycin MIC 1 mcg/mL.",
        "Ferritin 12 ng/mL, iron saturation 8%, TIBC 420.",
        "eGFR 42 mL/min/1.73m2 (CKD-EPI 2021).",
    ),
    K.RADIOLOGY: (
        "Impression: Acute nondisplaced fracture of the left femoral neck.",
        "BI-RADS 3: probably benign; 6-month follow-up.",
        "Moderate spinal canal stenosis at L3-L4; no cord signal abnormality.",
        "Contrast: 75 mL Isovue-370. CTDIvol 12.4 mGy.",
        "Heart size normal; no focal consolidation, effusion or pneumothorax.",
    ),
    K.PHARMACY: (
        "Enoxaparin 40 mg SC daily; CrCl 28 mL/min, adjust to 30 mg daily.",
        "Tacrolimus level 11.8 ng/mL (goal 8-10); decrease to 2 mg BID.",
        "Interaction: clarithromycin + simvastatin; hold statin x 7 days.",
        "Rx #4471902 refilled, qty 90, 3 refills remaining.",
        "Gentamicin 5 mg/kg IV q24h; level at 10 h.",
    ),
    K.NURSING: (
        "T 37.8 C, P 96, R 20, BP 104/66, SpO2 94% RA.",
        "Fall risk high (Morse 65); hourly rounding in place.",
        "CAM-ICU negative; RASS 0.",
        "PIV 20 g L forearm, site clean; NS at 75 mL/h.",
        "Output: 350 mL urine over 8 h; BM x1, guaiac negative.",
    ),
    K.SOCIAL_WORK: (
        "Patient screened positive for caregiver strain (score 9/13).",
        "Discussed Meals on Wheels and home health aide 3 days/week.",
        "AUDIT-C score 6; brief intervention provided.",
        "Patient has capacity to make this decision per psychiatry.",
        "Plan: SW to follow up in 1 week.",
    ),
    K.TELEHEALTH: (
        "Patient-reported weight 84.2 kg; home SpO2 95%.",
        "Visit conducted via two-way audio and video.",
        "A1c 8.3% from last month; increase glargine to 24 units.",
        "No red flags; return precautions reviewed.",
        "Time spent: 20 minutes.",
    ),
    K.DEVICE_CLINIC: (
        "Presenting rhythm: AS-VP at 72 bpm.",
        "Battery voltage 2.98 V, RRT not reached.",
        "Shock impedance 68 ohms; HV lead integrity normal.",
        "VT zone 171 bpm, VF zone 200 bpm; ATP x2 enabled.",
        "Lower rate 60, upper tracking rate 130, sensor on.",
    ),
    K.ED: (
        "Triage vitals: HR 122, BP 88/54, RR 28, SpO2 89%, T 39.2.",
        "CT head negative; C-spine cleared by NEXUS criteria.",
        "Given 2 L NS, zosyn 4.5 g IV, vancomycin 25 mg/kg.",
        "POCUS: no pericardial effusion; IVC collapsible.",
        "Disposition: admit to MICU.",
        "Tetanus up to date; wound irrigated with 500 mL NS.",
    ),
}

STYLE = NoteStyle(
    headers=HEADERS,
    bodies=BODIES,
    clinical=CLINICAL,
    fillers=fillers(),
    new_patient=new_patient,
)
SEED = 2017
"""The development set's seed (tests draw their small sets with others)."""
