"""The held-out evaluation set: templates, formats and value lists kept out of development.

Written before any detector change for issue 17 and never scored while the recognisers
were tuned; only the final report runs the detector on it. Its phrasings (EHR exports
with pipes and field codes, letters in prose, patient messages), value lists (names,
organisations, cities) and identifier formats (MRNs with and without prefixes, account
numbers with dashes and spaces, several states' licence formats, UDIs, IMEIs, plates)
differ from the development set's (:mod:`.development`), and it is drawn with its own
seed.
"""

from __future__ import annotations

from tutela.anonymize.eval.heldout_values import fillers, new_patient
from tutela.anonymize.eval.render import NoteKind, NoteStyle

K = NoteKind

HEADERS: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "DISCHARGE SUMMARY | {PT_LF} | MRN {MRN} | Adm {DATE} | Disch {DATE}",
        "Discharge Summary -- {HOSP}\nPatient: {PT_LF}    Unit No.: {MRN}",
    ),
    K.REFERRAL: (
        "{HOSP}\n{STREET}\n{CITY_ZIP}\n\n{DATE}\n\nDear {CLIN},",
        "Re: {PT} (DOB {DATE}), hospital no. {MRN}\nDear Colleague,",
    ),
    K.PORTAL: (
        "Message from {PT} via patient portal, sent {DATE}",
        "[Portal] From: {PT} <{EMAIL}>  Subject: question about my pills",
    ),
    K.LAB: (
        "LABORATORY REPORT  Pt: {PT_LF}  Med Rec #: {MRN}  Collected: {DATE}",
        "Specimen received {DATE} | Patient ID {MRN} | Ordering: {CLIN}",
    ),
    K.RADIOLOGY: (
        "RADIOLOGY -- {HOSP}\nName: {PT_LF}  MR# {MRN}  Exam date: {DATE}",
        "Exam: CT abdomen/pelvis w/ contrast. Pt {PT}, record no. {MRN}.",
    ),
    K.PHARMACY: (
        "Pharmacy consult note | {PT} | MRN {MRN} | {DATE}",
        "Outpatient pharmacy -- Rx for {PT_LF}, DOB {DATE}",
    ),
    K.NURSING: (
        "Nursing shift note {DATE} 0700-1900, pt {PT_LF} (MRN {MRN})",
        "RN note: {PT}, room 4-West, {DATE}",
    ),
    K.SOCIAL_WORK: (
        "Social Work Assessment -- {PT} -- {DATE}",
        "SW progress note. Client: {PT_LF}. Record {MRN}.",
    ),
    K.TELEHEALTH: (
        "Telehealth visit {DATE} with {PT} (video), MRN {MRN}",
        "Virtual visit note -- link {URL} -- patient {PT}",
    ),
    K.DEVICE_CLINIC: (
        "Device Clinic | {PT_LF} | MRN {MRN} | Interrogation {DATE}",
        "Remote monitoring transmission received {DATE} for {PT}.",
    ),
    K.ED: (
        "ED PROVIDER NOTE -- {HOSP} -- {PT_LF} -- arrival {DATE}",
        "Emergency Dept. Triage: {PT}, {AGE}yo, MRN {MRN}",
    ),
}

BODIES: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "{TITLE} {PT_LAST} is a {AGE} y/o retired {JOB} admitted with decompensated heart failure.",
        "Attending: {CLIN}. PCP: {CLIN} at {ORG}.",
        "Discharged to {ORG} in {CITY}; daughter {RELATIVE} ({PHONE}) aware.",
        "Home: {STREET}, {CITY_ZIP}.",
        "Follow-up appointment {DATE} in the heart failure clinic.",
        "Guarantor acct {ACCT}; Medicaid ID {PLAN}.",
        "Pt originally from {COUNTRY}; interpreter used for discharge teaching.",
    ),
    K.REFERRAL: (
        "I am writing about our mutual patient, {PT}, aged {AGE}, whom I saw on {DATE}.",
        "{TITLE} {PT_LAST} works as a {JOB} for {ORG} and has missed work since {DATE}.",
        "Her insurer is {ORG}; policy # {PLAN}.",
        "Please contact my office on {PHONE} or fax {PHONE}.",
        "Kind regards,\n{CLIN}\nNPI {NPI}",
        "Prior records were obtained from {HOSP} in {CITY}.",
        "Correspondence address: {STREET}, {CITY_ZIP}",
    ),
    K.PORTAL: (
        "Hi this is {PT_FIRST}, my new cell is {PHONE}, please update my chart.",
        "My husband {RELATIVE} will pick up the refill, his license is {LIC}.",
        "Can you send the forms to {EMAIL}? thank you",
        "I logged in from {IP} and saw a bill for account {ACCT} that I don't recognize.",
        "I moved to {STREET}, {CITY_ZIP} on {DATE}.",
        "I am {AGE} years old and can't drive to {HOSP} anymore.",
        "Reply from {CLIN}: received, we updated your address.",
    ),
    K.LAB: (
        "Accession linked to MRN {MRN}; result called to {CLIN} on {DATE}.",
        "Specimen drawn at {ORG}, {STREET}, {CITY}.",
        "Billing: acct no. {ACCT}.",
        "Reviewed by {CLIN}, pathologist, {HOSP}.",
        "Patient age at collection: {AGE}.",
        "Reference lab phone {PHONE}.",
    ),
    K.RADIOLOGY: (
        "Comparison: outside study from {HOSP} dated {DATE}.",
        "Indication: {AGE} year old with fall.",
        "Dictated by {CLIN} on {DATE}; images at {URL}.",
        "MRI safety screen: cochlear implant, serial {DEV}; cleared by {CLIN}.",
        "Results discussed with {TITLE} {PT_LAST} by phone at {PHONE}.",
        "Prior films requested from {ORG}, fax {PHONE}.",
    ),
    K.PHARMACY: (
        "Prescriber: {CLIN}, DEA {DEA}.",
        "Dispensed at {ORG}, {STREET}, {CITY}.",
        "Pickup by caregiver {RELATIVE}, driver license {LIC} verified.",
        "Insurance rejected claim; member # {PLAN}; account {ACCT}.",
        "Counseled {PT_FIRST} on {DATE}; callback number {PHONE}.",
        "Pt is {AGE}, on 11 meds; deprescribing discussed.",
    ),
    K.NURSING: (
        "{PT_FIRST} ({AGE} yo) resting comfortably, son {RELATIVE} at bedside.",
        "Family phone updated to {PHONE}.",
        "Wife {RELATIVE} brought home pump, serial no. {DEV}.",
        "Belongings: wallet with license {LIC}, keys to vehicle plate {PLATE}.",
        "Transferred to {ORG} on {DATE} per {CLIN}.",
        "Fingerprint badge scan for narcotics cabinet, template ID {BIO}.",
    ),
    K.SOCIAL_WORK: (
        "Client is a {AGE}-year-old widowed former {JOB} living alone at {STREET}.",
        "Emigrated from {COUNTRY} in {DATE}; daughter {RELATIVE} lives in {CITY}.",
        "Employer: {ORG}; FMLA paperwork faxed to {PHONE}.",
        "SSN {SSN} provided for benefits application.",
        "Car (VIN {VIN}) was repossessed on {DATE}.",
        "Referred to {ORG} case manager {RELATIVE}, email {EMAIL}.",
        "Housing voucher linked to Medicaid {PLAN}.",
    ),
    K.TELEHEALTH: (
        "Patient joined from home in {CITY}; verified identity with DOB {DATE}.",
        "Connection from IP address {IP} dropped twice.",
        "Caregiver {RELATIVE} joined by phone {PHONE}.",
        "Next video visit {DATE}; link sent to {EMAIL}.",
        "Voiceprint enrollment ID {BIO} used to verify the caller.",
        "Spouse is a {JOB} and helps with the glucometer uploads.",
    ),
    K.DEVICE_CLINIC: (
        "Dual-chamber pacemaker, S/N {DEV}, implanted {DATE} at {HOSP}.",
        "RA lead serial {DEV}; RV lead serial {DEV}.",
        "Home monitor IMEI {DEV} paired successfully.",
        "Device rep {RELATIVE} present; callback {PHONE}.",
        "{TITLE} {PT_LAST}, {AGE}, reports no shocks since {DATE}.",
        "Remote data uploaded from {IP}.",
    ),
    K.ED: (
        "BIBA after MVC; driver of vehicle tag {PLATE}, VIN {VIN}.",
        "Police officer {RELATIVE} (badge on file) requested BAL.",
        "Pt is a {JOB} at {ORG}, fell from ladder.",
        "ID: license {LIC}; insurance {PLAN}.",
        "Sister {RELATIVE} called from {PHONE}.",
        "Lives at {STREET}, {CITY}.",
        "Aged {AGE}, independent at baseline per family.",
    ),
}

CLINICAL: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "Principal diagnosis: acute on chronic HFrEF (I50.23); EF 25-30%.",
        "Discharge meds: furosemide 40 mg PO BID, carvedilol 6.25 mg BID, Entresto 24/26 mg BID.",
        "Weight at discharge 71.4 kg (admission 76.9 kg).",
        "Na 131, K 3.6, Cr 1.48 (baseline 1.1-1.3).",
        "Follow up with cardiology in 7-10 days; BMP in 1 week.",
        "Code status: DNR/DNI confirmed with patient.",
        "Course complicated by C. difficile colitis, PO vancomycin 125 mg QID x 10 d.",
    ),
    K.REFERRAL: (
        "Gleason 3+4=7 adenocarcinoma on biopsy; PSA 8.2 ng/mL.",
        "She has a history of Graves disease and Hashimoto encephalopathy was considered.",
        "Current regimen: levothyroxine 88 mcg daily, vitamin D3 2000 IU daily.",
        "Parkinson disease, Hoehn and Yahr stage 2.",
        "BI-RADS 4B lesion at 2 o'clock, 3 cm FN.",
        "I would appreciate your opinion regarding further management.",
    ),
    K.PORTAL: (
        "my sugar was 212 this morning and 180 after lunch, is that ok??",
        "I took 2 tabs of the 5 mg instead of 1, should I skip tomorrow",
        "the rash is on my left arm about 3 inches, no fever",
        "Can I take Tylenol with the Eliquis?",
        "BP readings: 148/92, 151/88, 139/85 this week.",
    ),
    K.LAB: (
        "WBC 11.2 x 10^9/L (H), ANC 8.9 x 10^9/L, Hgb 10.1 g/dL (L), PLT 412 x 10^9/L.",
        "INR 3.4 (H); PT 36.2 s; aPTT 41 s.",
        "Urine culture: >100,000 CFU/mL E. coli, ESBL negative.",
        "HbA1c 9.1% (ref 4.0-5.6).",
        "TSH 0.02 mIU/L, free T4 2.9 ng/dL.",
        "Lipase 612 U/L; AST 88, ALT 102, ALP 140, T bili 1.9.",
        "Specimen hemolyzed; potassium 5.9 may be spurious, recollect.",
    ),
    K.RADIOLOGY: (
        "Impression: 1. No acute intracranial hemorrhage. 2. Chronic microvascular changes.",
        "4 mm nodule in the RLL (series 3, image 112); Fleischner follow-up CT in 12 months.",
        "Mild degenerative disc disease at C5-C6 and L4-L5.",
        "LI-RADS 4 observation in segment VII measuring 1.8 x 1.6 cm.",
        "Technique: 100 mL Omnipaque 350 IV; DLP 812 mGy-cm.",
        "Grade 2 hepatic steatosis; spleen 13.2 cm.",
    ),
    K.PHARMACY: (
        "Vancomycin trough 14.2 mcg/mL; continue 1250 mg IV q12h.",
        "CrCl 38 mL/min by Cockcroft-Gault; reduce apixaban to 2.5 mg BID.",
        "QTc 478 ms on ECG; avoid ondansetron and azithromycin.",
        "Lot 4471B exp 09/2026 dispensed; 30 day supply, 2 refills.",
        "Warfarin 7.5 mg Mon/Fri, 5 mg other days; INR goal 2-3.",
        "NDC 0093-7146-56 substituted for brand.",
    ),
    K.NURSING: (
        "VS: T 38.1, HR 104, RR 22, BP 98/61, SpO2 91% on 2 L NC.",
        "Braden 14, Morse fall score 55; bed alarm on.",
        "I&O: 1450 in / 900 out; Foley draining clear yellow urine.",
        "Pain 7/10 at 0300, 2 mg IV morphine given, reassessed 3/10 at 0330.",
        "Turned q2h; stage II pressure injury to sacrum, 2 x 3 cm.",
        "Accucheck 243 at 2100, 4 units lispro per sliding scale.",
    ),
    K.SOCIAL_WORK: (
        "PHQ-9 score 16 (moderately severe); GAD-7 score 12.",
        "Patient reports 3 falls in the past 6 months.",
        "ADLs: independent with feeding, needs assist x1 with bathing.",
        "Discussed advance directives; patient wishes to name a health care proxy.",
        "Food insecurity screen positive; SNAP application started.",
    ),
    K.TELEHEALTH: (
        "Home BP log reviewed: average 136/84 over 14 days.",
        "Visual inspection of the wound via camera: 1.5 cm granulating base, no purulence.",
        "Total time 25 minutes, >50% counseling.",
        "Audio-only due to bandwidth; patient consented to telehealth.",
        "CGM: time in range 62%, GMI 7.6%.",
    ),
    K.DEVICE_CLINIC: (
        "Battery 9.5 years; RA pacing 12%, RV pacing 98%.",
        "RV lead impedance 520 ohms, threshold 0.75 V @ 0.4 ms, R wave 11.2 mV.",
        "2 episodes of AT/AF, longest 3 min 12 s; AF burden <0.1%.",
        "Mode DDDR 60/130; AV delay 180 ms.",
        "No VT/VF events; 0 shocks, 0 ATP.",
        "Model W1DR01 generator functioning normally.",
    ),
    K.ED: (
        "GCS 14 (E4V4M6); pupils 3 mm, equal and reactive.",
        "FAST negative; CXR: no pneumothorax.",
        "Lactate 4.1 mmol/L; 30 mL/kg LR bolus started.",
        "ECG: sinus tachycardia 118, ST depression V4-V6.",
        "Tdap given; laceration 4 cm repaired with 6 sutures 4-0 nylon.",
        "ESI level 2; sepsis alert at 1412.",
    ),
}

STYLE = NoteStyle(
    headers=HEADERS,
    bodies=BODIES,
    clinical=CLINICAL,
    fillers=fillers(),
    new_patient=new_patient,
)
SEED = 170317
"""The held-out set's seed (the development set uses others)."""
