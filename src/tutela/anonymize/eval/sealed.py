"""The sealed evaluation set: templates for eleven kinds of note (values in :mod:`.sealed_values`).

This set was written without reference to the detector, its recognisers or the other four
evaluation sets, and is scored only in final reports, never during development. Its
writing tradition is its own: US safety-net and community care (federally qualified health
centres, VA and Indian Health Service clinics, home health and hospice agencies, dental,
optometry, occupational and correctional health, school nurses) and hospital notes from the
Caribbean, South Africa, India, Singapore, the Philippines and Kenya. Notes come as
dictated-and-transcribed reports, EHR exports with pipes, key=value pairs and fixed-width
columns, claim-form fields, fax cover sheets, prior-authorisation letters, text-message
threads with typos, flowsheet rows, case-management and interpreter notes.

Every eighth note holds clinical lines only; those lines are written to look dangerous
(eponyms, drug doses, lab values, scores, codes, times, bed numbers, "Dr." in generic
phrases) so that false positives can be measured.
"""

from __future__ import annotations

from tutela.anonymize.eval import sealed_values
from tutela.anonymize.eval.render import NoteKind, NoteStyle

K = NoteKind

HEADERS: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "{HOSP}\nDISCHARGE SUMMARY\nName: {PT}    IP No.: {MRN}    Age/Sex: {AGENUM}/{SEX}\n"
        "Date of admission: {DATE}    Date of discharge: {DATE}",
        "DISCHARGE SUMMARY -- {HOSP}\nPATIENT: {PT}  MR#: {MRN}  ADMITTED: {DATE}\n"
        "ATTENDING: {DOC}",
        "PALMYRA JUNCTION VAMC // INPATIENT DISCHARGE NOTE\nPATIENT: {PT}   SSN: {SSN}   "
        "DOB: {DOB}   AGE: {AGENUM}\nWARD: 4 EAST   ADMIT DT: {DATE}",
        "{HOSP} | Discharge Summary | UHID: {MRN} | Bill No: {ACCT}\nPatient Name: {PTT} | "
        "DOA: {DATE} | DOD: {DATE} | Consultant: {DOC}",
        "Hospital No.: {MRN}   PhilHealth PIN: {PLAN}\nName of Patient: {PT}, {AGEPHR}\n"
        "Address: {ADDR}, {CITYST}",
    ),
    K.REFERRAL: (
        "FAX COVER SHEET\nTo: {DOC} / {HOSP}    Fax: {PHONE}\nFrom: {STAFF}, {HOSP}    "
        "Phone: {PHONE}\nDate: {DATE}    RE: {PT}  DOB {DOB}",
        "{AGENCY}\nPRIOR AUTHORIZATION REQUEST -- {INSURER}\nMember: {PT}   Member ID: {PLAN}   "
        "Group: {GROUP}\nRequesting provider: {DOC}   NPI {NPI}",
        "{HOSP}\n{ADDR}\nDear Colleague,\nRe: {PTT}, {AGEADJ} {SEX}, hosp. no. {MRN}",
        "To,\nThe Consultant (Ophthalmology),\n{HOSP}\nSub: Referral of {PTT}, "
        "{AGENUM}/{SEX}, UHID {MRN}, dated {DATE}",
        "{HOSP} -- referral to oral surgery\nPatient: {PT} | DOB: {DOB} | Chart: {MRN} | "
        "Medicaid: {PLAN}",
    ),
    K.PORTAL: (
        "Portal msg | From: {PT} | To: {HOSP} nurse line | Sent {DATE} 9:42 PM",
        "SMS reply -- {PHONE} -> {HOSP} appt line\n{DATE} 07:15",
        "Secure message from {PTF} ({EMAIL}) -- subject: refill?? -- received {DATE}",
        "Text thread w/ pt {PT}, DOB {DOB}, cell {PHONE}",
    ),
    K.LAB: (
        "MSH|^~\\&|LAB|LCCHC|||{DATE}||ORU^R01\nPID|1||{MRN}^^^MR||{PTL}^{PTF}||{DOB}|{SEX}",
        "patient_name={PT}; mrn={MRN}; dob={DOB}; collected={DATE}; ordering_npi={NPI}; "
        "acct={ACCT}",
        "NAME.......: {PT}\nMRN........: {MRN}     AGE/SEX: {AGENUM}/{SEX}\n"
        "COLLECTED..: {DATE}   SOURCE: {HOSP}",
        "{HOSP} -- Laboratory Medicine\nPatient: {PT}   Case No.: {ACCT}   MRN: {MRN}   "
        "Age: {AGENUM}",
        "CUSTODY AND CONTROL FORM (copy 4)\nDonor: {PT}   Donor ID (CDL): {DL}\n"
        "Employer: {EMPLOYER}   Collection site: {HOSP}   Date: {DATE}",
    ),
    K.RADIOLOGY: (
        "{HOSP} Department of Radiology\nPatient: {PT}   MRN: {MRN}   Acc#: {ACCT}\n"
        "Exam date: {DATE}   Referring: {DOC}",
        "TELERADIOLOGY REPORT -- read remotely for {HOSP}\nName: {PT} | Age: {AGENUM} | "
        "DOB: {DOB} | Ordering: {DOC}, NPI {NPI}",
        "{HOSP} -- Panoramic radiograph\nPt: {PT}  Chart {MRN}  DOB {DOB}  Medicaid {PLAN}",
        "OCT MACULA OU -- {HOSP}\n{PT}, {AGEADJ} {SEX}, pt ID {MRN}, seen {DATE}",
        "RADIOLOGY REPORT\nNAME: {PT}     MR: {MRN}     DATE OF EXAM: {DATE}\nAGE: {AGENUM}",
    ),
    K.PHARMACY: (
        "{HOSP} 340B Pharmacy -- Medication Reconciliation\nPatient: {PT}  DOB: {DOB}  Pt ID {MRN}",
        "MED PASS RECORD -- {HOSP}\nInmate: {PT}  Booking #{MRN}  Housing: Unit C-2  DOB {DOB}",
        "Prescription -- {HOSP}\n{DOC}   Reg. No. {PROFLIC}\nName of patient: {PTT}   "
        "Age: {AGENUM}   Sex: {SEX}   Date: {DATE}",
        "PHARMACY CONSULT | pt={PT} | mrn={MRN} | payer={INSURER} | member={PLAN}",
    ),
    K.NURSING: (
        "{HOSP} -- SKILLED NURSING VISIT\nPt: {PT}   MR#: {MRN}   Visit date: {DATE}   "
        "Clinician: {STAFF}",
        "{SCHOOL} -- Health Office Visit Log\nStudent: {PT}   Parent/guardian: {NAME}   {DATE}",
        "FLOWSHEET | {PT} | {MRN} | Bed 12B | {DATE}",
        "Hospice RN visit -- {HOSP}\nPatient: {PTT}, {AGEADJ} {SEX}, DOB {DOB}",
        "SICK CALL -- {HOSP}\nName: {PT}   ID# {MRN}   DOB {DOB}   Age {AGENUM}",
    ),
    K.SOCIAL_WORK: (
        "{HOSP} -- Case Management Note\nClient: {PT}   MRN {MRN}   DOB {DOB}   "
        "Date of contact: {DATE}",
        "INTERPRETER ENCOUNTER -- {AGENCY}\nInterpreter: {NAME} (Somali), cert. {PROFLIC}\n"
        "Patient: {PT}   Appt {DATE}   Clinic: {HOSP}",
        "Community Health Representative home visit -- {HOSP}\nClient {PTT}, {AGEPHR}, {PLACE}",
        "Hospice MSW psychosocial assessment\n{PT} | {AGEADJ} {SEX} | {HOSP} | {DATE}",
    ),
    K.TELEHEALTH: (
        "VA VIDEO CONNECT -- {HOSP}\nVeteran: {PT}   SSN: {SSN}   ICN: {MRN}\n"
        "Provider: {DOC}   Date: {DATE}",
        "TELEPSYCHIATRY NOTE -- {HOSP}\nPatient {PT} ({AGEADJ} {SEX}) joined from home; "
        "patient location: {CITYST}",
        "virtual_visit session={ACCT} pt={PT} ip={IP} start={DATE} 14:02",
        "Teleconsultation -- {HOSP}, {CITYST}\nName: {PTT}   Case No. {ACCT}   DOB {DOB}",
    ),
    K.DEVICE_CLINIC: (
        "DEVICE CLINIC -- {HOSP}\nPatient: {PT}   MRN {MRN}   DOB {DOB}\n"
        "Dual-chamber pacemaker   S/N {SERIAL}   implanted {DATE}",
        "CPAP COMPLIANCE DOWNLOAD | {PT} | DOB {DOB} | age {AGENUM} | DME: {AGENCY}",
        "Audiology -- {HOSP}\n{PTT}, {AGEADJ} {SEX}; hearing aids R/L serials {SERIAL} / {SERIAL}",
        "Insulin pump download -- {HOSP}\nName={PT}; pump_sn={SERIAL}; upload={DATE}",
    ),
    K.ED: (
        "ACCIDENT & EMERGENCY -- {HOSP}\nName: {PT}   Age: {AGENUM}   Sex: {SEX}   "
        "Reg. No.: {MRN}\nBrought by: {REL}   Time seen: 02:40",
        "ED PROVIDER NOTE -- {HOSP}, {CITYST}\nPt: {PT}  DOB {DOB}  FIN {ACCT}  "
        "Arrival {DATE} 23:17 via EMS",
        "CASUALTY CARD -- {HOSP}\nOPD No. {MRN} | {PTT} | {AGEPHR} | {PLACE}",
        "WORKERS' COMP FIRST REPORT -- {HOSP}\nEmployee: {PT}   Employer: {EMPLOYER}   "
        "Claim # {ACCT}   DOI {DATE}",
        "EMS HANDOFF (MIST)\nPt {PT}, {AGEADJ} {SEX}, from {ADDRFULL}; medic {NAME}",
    ),
}

BODIES: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "This is a {AGEADJ} {SEX}, a {PROF} from {CITYST}, admitted via casualty on {DATE} "
        "with c/o fever x 5/7.",
        "Pt was brought in by {REL} who states she has been living alone at {ADDRFULL} since "
        "her husband passed.",
        "patient is a {AGEADJ} {SEX} known to {HOSP} who presented on {DATE} with shortness "
        "of breath and the family which includes {REL} who can be reached at {PHONE} wanted "
        "full code which was confirmed with the patient and the plan is home with services",
        "Discharged to the care of {REL} ({PHONE}); review at {HOSP} medical clinic on {DATE}.",
        "Home health referral faxed to {AGENCY} at {PHONE} for skilled nursing, PT and OT.",
        "PhilHealth member: {PTT}; PIN {PLAN}; employer {EMPLOYER}.",
        "Permanent pacemaker in situ (serial {SERIAL}); device card given back to patient.",
        "Health-care proxy is {REL}, tel. {PHONE}; advance directive witnessed by {NAME} on "
        "{DATE}.",
        "{REL} will take pt home to {CITY} in the family pickup, plate {PLATE}.",
        "Billing: account {ACCT}, payer {INSURER}, member ID {PLAN}.",
        "Dictated by {DOC} on {DATE} -- dictated but not read.",
        "cc: {DOC}, {HOSP}, fax {PHONE}",
        "Lives with {OLDREL}, who is bedbound; respite referral made.",
        "Registration: SSN {SSN}, DOB {DOB}, emergency contact {REL}.",
        "Ward round: {PT} ({BORN}) seen with the team; daughter-in-law {NAME} updated.",
        "Mr/Ms {PTL} was counselled in Tagalog with the help of {NAME} from {AGENCY}.",
    ),
    K.REFERRAL: (
        "Kindly see and do the needful for this {AGEADJ} {PROF} from {CITYST} with raised IOP.",
        "Pt was seen at our FQHC on {DATE}; please schedule at your earliest, pt's cell "
        "{PHONE} (prefers texts in Spanish).",
        "Member {PTT} has failed metformin and glipizide; prior denial reference {ACCT}.",
        "Requesting prescriber DEA {DEA}, state licence {PROFLIC}.",
        "The patient lives at {ADDRFULL}; transport arranged by {AGENCY}.",
        "Please send the report to {STAFFEMAIL} or fax {PHONE} attn {STAFF}.",
        "Medical aid: {INSURER}, no. {PLAN}; main member is the patient's {REL}.",
        "1a INSURED ID {PLAN} | 2 PATIENT {PT} | 3 DOB {DOB} | 5 {ADDR} | ZIP {ZIP} | 24J {NPI}",
        "The {OLDREL} is the primary caregiver and can be reached on {PHONE}.",
        "Previously seen by {DOC} at {HOSP} on {DATE} (old file no. {MRN2}).",
        "Employer {EMPLOYER} requests a fitness-for-duty opinion; works as a {PROF}.",
        "Yours faithfully,\n{DOC}\nLic. No. {PROFLIC}",
        "Patient's email for scheduling: {EMAIL}; alternate number {PHONE}.",
        "Patient is {AGEPHR} and lives in {PLACE}; {REL} accompanies her to visits.",
        "Records uploaded to the payer portal {URL}; case opened {DATE}.",
    ),
    K.PORTAL: (
        "hi dr its {PTF} my {REL} said i shud ask about the sugar pills they r making me dizzy",
        "can u send the letter for {EMPLOYER} i cant work the line til my hand heals pls",
        "new addy is {ADDR} {CITY} {ZIP} pls update",
        "my medicaid # is {PLAN} the front desk said it didnt go thru",
        "call me on {PHONE} after 5 im at work (im a {PROF} now)",
        "this is {REL}, {PTF} is {AGEPHR} and not eating since {DATE} what do we do",
        "pls email results to {EMAIL} not the old one",
        "got the link {URL} but the video wont load",
        "Staff reply ({STAFF}): Hi {PTF}, your refill was sent. Reply STOP to opt out.",
        "my bday is {DOB} they have it wrong in the system",
        "New sign-in to your account from {IP} on {DATE}. Not you? Call {PHONE}.",
        "can my {OLDREL} come to the appt too she uses a wheelchair",
        "the glucose meter sn {SERIAL} says E-3 again",
        "sorry wrong chat, that last msg was for {NAME}",
        "texting for {PTF} who turned {AGENUM} last wk, is that too old for the shingles shot",
    ),
    K.LAB: (
        "Specimen collected at {HOSP} draw station by {STAFF} on {DATE}.",
        "Donor identity verified by {BIOKIND} ({BIO}) and photo ID, DL {DL}.",
        "MRO: {DOC}, tel {PHONE}; result released to DER {NAME} at {EMPLOYER}.",
        "PPD read by school nurse {NAME} at {SCHOOL} on {DATE}: 0 mm induration.",
        "Critical value called to {STAFF} on {DATE} at 03:14, read back confirmed.",
        "OBR|1|{ACCT}||CBC^Complete blood count|||{DATE}||||||||{NPI}^{NAME}",
        "Result copy to {DOC} at {HOSP}, fax {PHONE}.",
        "Insurance: {INSURER}  ID {PLAN}  GRP {GROUP}  bill to acct {ACCT}",
        "Pt address per requisition: {ADDRFULL}",
        "age={AGENUM}|sex={SEX}|city={CITY}|zip={ZIP}",
        "Kinship testing: buccal swab from {REL}; identity by {BIOKIND}, ref {BIO}.",
        "CGM sensor {SERIAL} data attached to this HbA1c order by {STAFF}.",
        "Patient portal release to {EMAIL} on {DATE}.",
        "Requisition received from {HOSP}, {CITYST}; requesting doctor {DOC}, {PROFLIC}.",
        "Donor SSN (last four) {SSN4}; collector {NAME}; seal intact.",
    ),
    K.RADIOLOGY: (
        "Comparison: outside films from {HOSP} dated {DATE}, brought on CD by {REL}.",
        "Findings discussed by telephone with {DOC} at {PHONE} on {DATE} at 16:40.",
        "Dictated by {DOC} {DATE}, transcribed by {NAME}; dictated but not read.",
        "Left hip prosthesis; implant log lists serial {SERIAL} (placed {DATE}).",
        "Clinical history: {AGEADJ} {PROF} fell from a ladder at work ({EMPLOYER}).",
        "Pacemaker screened before MRI: generator S/N {SERIAL}, cleared by {DOC}.",
        "Images pushed to PACS from workstation {IP}; remote reader {DOC}, lic. {PROFLIC}.",
        "Identity confirmed with two identifiers (name and DOB {DOB}); wristband {MRN}.",
        "Cochlear implant on the left (UDI {UDI}) -- MRI deferred.",
        "Billing: CPT 71046 on account {ACCT}; payer {INSURER}.",
        "Report copy to {DOC}, {HOSP}, {ADDRFULL}.",
        "The patient, a {AGEADJ} {SEX} from {CITYST}, came by ambulance for CT head.",
        "Prior outside study at {HOSP} under MRN {MRN2} could not be retrieved.",
        "Results to pt via portal {URL} per her request.",
    ),
    K.PHARMACY: (
        "Controlled substance dispensed; prescriber {DOC}, DEA {DEA}, NPI {NPI}.",
        "Picked up by {REL}; ID checked (DL {DL}), signature on file.",
        "Identity verified at dispensing by {BIOKIND}, template {BIO}, per facility policy.",
        "Delivery to {ADDRFULL}; courier to call {PHONE} on arrival.",
        "Claim rejected 75 (PA required); PA sent to {INSURER} on {DATE}, ref {ACCT}.",
        "Counselled {PTT} and {REL} on warfarin; INR clinic at {HOSP}.",
        "Pt works as a {PROF} and asks for once-daily dosing because of rotating shifts.",
        "Insulin pump supplies for pump S/N {SERIAL}: reservoirs 3 mL, infusion sets 6 mm.",
        "Refill reminder texted to {PHONE}; portal link {URL}.",
        "Medicare MBI {MBI} verified; Part D coverage through {INSURER}.",
        "{AGEADJ} {SEX} on 14 medications; deprescribing review requested by {DOC}.",
        "Rx transferred from a pharmacy in {CITYST}, original fill {DATE}.",
        "Pharmacist: {NAME}, RPh, licence {PROFLIC}.",
        "Pt is {AGEPHR}; large-print labels requested by {REL}.",
        "Manufacturer assistance form: SSN {SSN}, household of 4, income verified.",
    ),
    K.NURSING: (
        "0800 | VS | T 37.8 | HR 104 | RR 22 | BP 98/60 | SpO2 91% RA | init. {STAFF}",
        "Pt's {REL} present; taught Foley care; best number {PHONE}.",
        "Home visit at {ADDR}: dressing changed, no signs of infection.",
        "Bed-bound; lives with {OLDREL}; neighbour {NAME} checks in daily.",
        "Grandson, {YOUNG}, stays over weekends; caregiver {NAME} weekdays 8-4.",
        "Student seen for wheeze; mom {NAME} called at {PHONE}, picked up at 10:40 on {DATE}.",
        "OASIS risk factors reviewed; last hospitalization at {HOSP} on {DATE}.",
        "Sick call slip dated {DATE}: inmate states 'my sugar been high'; seen by {STAFF}.",
        "Pt states they worked as a {PROF} for forty years; oriented x3.",
        "Hospice aide {NAME} to visit MWF; chaplain {NAME} requested by family.",
        "Orders signed by {DOC} received via fax {PHONE} on {DATE}.",
        "Pt is a {AGEADJ} {SEX}; Medicare {MBI}; episode start {DATE}.",
        "Transferred to {HOSP} by EMS; report called to {STAFF} at {PHONE}.",
        "EVV clock-in by aide's {BIOKIND} ({BIO}) at client home, {CITY}.",
        "Oxygen concentrator S/N {SERIAL} checked; backup cylinders x2.",
        "Patient {AGEPHR}, born {DOB}, alert and pleasant, asks about {REL}.",
    ),
    K.SOCIAL_WORK: (
        "Client is a {AGEADJ} {PROF} who lost work at {EMPLOYER} on {DATE}; applying for SNAP.",
        "Housing: currently staying at {ADDRFULL} with {REL}; waitlisted with {AGENCY}.",
        "SSN {SSN} verified for the benefits application; copy of DL {DL} scanned.",
        "Collateral contact: {REL}, cell {PHONE}, email {EMAIL}.",
        "Interpreted via video by {NAME}; pt declined family interpreting by {REL}.",
        "Referred to {AGENCY} for help with the eviction notice dated {DATE}.",
        "Pt's truck (VIN {VIN}) was repossessed; Medicaid ride booked to {HOSP}.",
        "Caregiver strain: client cares for {OLDREL} at home in {CITY}.",
        "IHS eligibility confirmed; chapter {PLACE}; CHR {NAME} to follow.",
        "NHIF card no. {PLAN} lapsed; relatives in {CITYST} to help with bill {ACCT}.",
        "Son ({YOUNG}) attends {SCHOOL}; counsellor {NAME}, {PHONE}.",
        "Pt sleeping in car, plate {PLATE}, parked behind {ADDR}.",
        "Fingerprint card for the housing application: {BIOKIND} ref {BIO}.",
        "Client {AGEPHR}; no living relatives per client except {REL} in {PLACE}.",
        "Client's fundraiser page {URL} was set up by {REL}.",
        "{PTT} ({BORN}) came in person with {REL}; Kaimana interpreter requested.",
    ),
    K.TELEHEALTH: (
        "Patient location verified: {ADDRFULL}; callback if disconnected {PHONE}.",
        "Connection from {IP} dropped twice; visit completed by audio only.",
        "Video link sent to {EMAIL}: {URL}",
        "{REL} on camera to assist; interpreter {NAME} joined from {CITY}.",
        "Consent for telehealth obtained verbally on {DATE}.",
        "Identity confirmed by {BIOKIND} in the app (enrolment {BIO}).",
        "Veteran is a {AGEADJ} {PROF}; lives in {CITYST}.",
        "RPM: BP cuff S/N {SERIAL} transmits via hub MAC {MAC}.",
        "Provider licensed in the patient's state: lic. {PROFLIC}; NPI {NPI}.",
        "Next video visit {DATE}; tablet on loan from {AGENCY}.",
        "Spouse {NAME} says he still works nights at {EMPLOYER}.",
        "Client IP {IP}; browser session ended 14:41.",
        "Pt {AGEPHR}; vision poor, so {REL} reads the screen aloud.",
    ),
    K.DEVICE_CLINIC: (
        "UDI scanned at implant: {UDI}.",
        "Remote transmission received {DATE} via bedside monitor (MAC {MAC}).",
        "Monitor paired to pt's phone ({PHONE}); handset IMEI {SERIAL}.",
        "Manufacturer rep {NAME} present; registration mailed to {ADDRFULL}.",
        "ERI reached; generator change booked with {DOC} at {HOSP} on {DATE}.",
        "Oxygen concentrator serial {SERIAL} supplied by {AGENCY}.",
        "Cochlear processor (L) S/N {SERIAL}; implant UDI {UDI}.",
        "Pt is a {AGEADJ} {PROF}; drives a truck (plate {PLATE}); ICD driving rules discussed.",
        "ID card reissued; {REL} keeps a copy; emergency contact {PHONE}.",
        "{INSURER} member {PLAN} needs 70% compliance for continued coverage.",
        "Data uploaded from {IP} to the vendor portal by {STAFF}.",
        "Phone unlock by {BIOKIND} ({BIO}) used for CGM follower app, per pt.",
        "Loaner transmitter {SERIAL} returned by {REL} on {DATE}.",
        "Patient {AGEPHR}; DOB {DOB}; lives in {CITYST}.",
        "Pt registered the device at {URL} with help from {REL}.",
    ),
    K.ED: (
        "{AGEADJ} {PROF} injured at {EMPLOYER} when a pallet fell on the R foot on {DATE}.",
        "MVC: driver of a pickup, VIN {VIN}, plate {PLATE}; restrained; airbag deployed.",
        "Officer {NAME} at bedside; pt in custody, booking no. {MRN2}.",
        "Arrived unidentified; identified by {BIOKIND} match ({BIO}) via sheriff's office.",
        "Next of kin: {REL}, {PHONE}; lives {ADDR}, {CITY}.",
        "DL {DL} used for identification; SSN {SSN} from prior registration.",
        "WC carrier {INSURER}, adjuster {NAME}, phone {PHONE}, claim {ACCT}.",
        "Seen earlier today at {HOSP}; Tdap given there.",
        "Discussed with on-call ortho {DOC}; transfer to {HOSP} accepted.",
        "Pt's {OLDREL} found the pt on the floor at 05:00.",
        "Accompanied by a neighbour, {YOUNG}, who drove from {CITY}.",
        "Brought in by matatu from {CITYST}; relatives informed via {PHONE}.",
        "Insured under {INSURER}, member no. {PLAN}.",
        "DOB {DOB}; registration corrected by {STAFF}.",
        "{AGEADJ} {SEX} from {PLACE}, lives alone at {ADDRFULL}.",
        "Transferred from {HOSP}, MRN there {MRN2}, via {AGENCY} transport.",
    ),
}

CLINICAL: dict[NoteKind, tuple[str, ...]] = {
    K.DISCHARGE: (
        "Glasgow Coma Scale 15/15 on arrival to the ward; Foley catheter removed on day 3.",
        "Discharge medications: metformin 500 mg PO BID, amlodipine 5 mg OD, atorvastatin "
        "40 mg nocte.",
        "Hb 8.9 g/dL on admission, 10.4 g/dL at discharge after 2 units PRBC.",
        "Diagnoses: community-acquired pneumonia (J18.9); type 2 DM with hyperglycaemia (E11.65).",
        "Discussed with attending; plan agreed with the team and the patient.",
        "Condition at discharge: stable, ambulating with a walker, tolerating diet.",
        "Blood slide for malaria parasites negative x3; mRDT negative.",
        "CURB-65 score 2; IV ceftriaxone 1 g OD switched to amoxicillin-clavulanate 625 mg TDS.",
        "Morse Fall Scale 55 during stay; no falls.",
        "Follow up in medical outpatient clinic in 2 weeks with FBC and U/E/Cr.",
        "Code status: Full Code. Allergies: NKDA.",
        "Dictated but not read. Please excuse transcription errors.",
        "Wound reviewed, Steri-Strips in place, no discharge.",
    ),
    K.REFERRAL: (
        "Indication: proliferative diabetic retinopathy OU, HbA1c 10.2%.",
        "CPT 92134 requested (OCT retina); ICD-10 E11.3553.",
        "Periapical radiograph shows radiolucency at #30; tooth non-restorable.",
        "CONFIDENTIALITY NOTICE: this facsimile contains protected health information. If "
        "received in error, notify the sender and destroy all copies.",
        "Urgent: yes. Expected duration of treatment: 6 months.",
        "Step therapy: metformin 1000 mg BID x 6 months, glipizide 5 mg daily x 3 months.",
        "Kindly evaluate and advise regarding further management.",
        "Pages: 3 including cover.",
        "Dear Colleague, thank you for seeing this patient.",
        "Visual acuity OD 6/36, OS 6/9 (Snellen), unaided.",
        "Requested service: total knee arthroplasty, right, CPT 27447.",
        "Attached: last two clinic notes, medication list, HbA1c trend.",
    ),
    K.PORTAL: (
        "ok thx",
        "Reply Y to confirm your appointment or N to cancel.",
        "bp this am 142/88 pulse 76, took my lisinopril 10",
        "sugar was 243 after dinner, 118 fasting",
        "is it ok to take tylenol w/ the amoxicillin",
        "Your lab results are ready. Please log in to view them.",
        "still coughing no fever, using the inhaler 2 puffs q4h",
        "Reminder: bring all your medicine bottles to your visit.",
        "pls cancel tmrw appt no ride",
        "Nurse: go to the nearest ER if the chest pain comes back or you get short of breath.",
        "can i get a refill on the metformin 500 i have 3 left",
        "Message read.",
    ),
    K.LAB: (
        "WBC      11.8   x10^9/L   (4.0-11.0)   H",
        "Hb       9.2    g/dL      (12.0-15.5)  L",
        "HbA1c 9.4 % (NGSP) / 79 mmol/mol (IFCC)",
        "Creatinine 1.42 mg/dL, eGFR 41 mL/min/1.73m2 (CKD-EPI 2021)",
        "Amphetamines NEG | Cocaine metabolite NEG | THC NEG | Opiates NEG | PCP NEG",
        "Specimen: serum, SST, centrifuged; hemolysis index 1+",
        "LOINC 4548-4 Hemoglobin A1c/Hemoglobin.total in Blood",
        "OBX|3|NM|2345-7^Glucose^LN||187|mg/dL|70-99|H|||F",
        "Potassium 5.9 mmol/L (3.5-5.1) H -- repeat on a non-haemolysed sample requested",
        "QuantiFERON: nil 0.05 IU/mL, TB1-nil 0.02 IU/mL, result NEGATIVE",
        "Malaria RDT negative; thick film: no parasites seen.",
        "Results verified by pathologist; see reference ranges.",
        "Urine dipstick: protein 2+, glucose neg, ketones neg, blood trace",
    ),
    K.RADIOLOGY: (
        "IMPRESSION: No acute intracranial abnormality. Chronic small vessel ischemic change.",
        "Technique: CT abdomen/pelvis with IV contrast, 100 mL Omnipaque 350; DLP 612 mGy-cm.",
        "The lungs are clear. No pleural effusion or pneumothorax. Heart size normal.",
        "BI-RADS 2: benign finding. Routine screening in 12 months.",
        "Periapical radiolucency at #19 mesial root; widened PDL space.",
        "OCT: central subfield thickness 412 microns OD, 268 microns OS; intraretinal fluid OD.",
        "Foley catheter balloon in the bladder. NG tube tip below the diaphragm.",
        "Kellgren-Lawrence grade 3 osteoarthritis of the medial compartment.",
        "Comparison: none available.",
        "Fleischner Society: no follow-up needed for a 4 mm solid nodule in a low-risk patient.",
        "Cup-to-disc 0.7 OD, 0.4 OS; IOP 26 mmHg OD, 15 mmHg OS by Goldmann applanation.",
        "Bone age by Greulich and Pyle consistent with chronological age.",
        "No Salter-Harris fracture identified.",
    ),
    K.PHARMACY: (
        "Metformin 500 mg tab, 1 tab PO BID with meals, #60, refills 5.",
        "Warfarin 5 mg Mon/Wed/Fri, 2.5 mg other days; target INR 2.0-3.0.",
        "Insulin glargine 22 units subcut at bedtime; lispro per sliding scale.",
        "Interaction alert: clarithromycin + simvastatin; simvastatin held.",
        "Apixaban 5 mg BID; CrCl 58 mL/min by Cockcroft-Gault, no dose change.",
        "Med pass 0800/2000, DOT; swallowed in presence of nurse, mouth check done.",
        "Tab. Paracetamol 500 mg 1-0-1 x 5 days; Cap. Omeprazole 20 mg 1-0-0 before food.",
        "Allergy: sulfa (rash). No known food allergies.",
        "Naloxone 4 mg nasal spray dispensed with the opioid per standing order.",
        "340B eligible encounter; sliding fee scale category C.",
        "Beers Criteria: diphenhydramine flagged; suggest melatonin 3 mg.",
        "Shingrix dose 2 and Tdap given; VIS provided.",
    ),
    K.NURSING: (
        "Braden score 13; turning schedule q2h, heels offloaded.",
        "Morse Fall Scale 45: bed alarm on, call light in reach, non-skid socks.",
        "Foley draining clear yellow urine, 350 mL this shift.",
        "Pain 6/10 at 0900, oxycodone 5 mg given; 3/10 at 1000.",
        "Lungs diminished at bases, 2 L O2 via NC, SpO2 94%.",
        "Fingerstick glucose 212 mg/dL at 1130; 4 units lispro per sliding scale.",
        "Stage 2 pressure injury to sacrum 2 x 1.5 cm; foam dressing applied.",
        "Albuterol 2 puffs with spacer given in health office; peak flow 280 -> 340 L/min.",
        "Palliative Performance Scale 30%; comfort kit in the home.",
        "GCS E4 V5 M6; pupils equal and reactive.",
        "I&O: intake 1200 mL, output 900 mL.",
        "Call light in reach. Will continue to monitor.",
        "Hourly rounding done; pain, position, potty, possessions addressed.",
    ),
    K.SOCIAL_WORK: (
        "PHQ-9 score 16 (moderately severe); C-SSRS screen negative today.",
        "SDOH screen (PRAPARE): food insecurity yes, transportation barrier yes.",
        "Advance care planning discussed; POLST completed, DNR/comfort measures.",
        "Patient agreeable to plan. Will follow up in one week.",
        "Interpreter used for the entire encounter; teach-back confirmed understanding.",
        "Financial assistance application pending; sliding fee scale applied.",
        "Bereavement follow-up at 13 months per hospice protocol.",
        "No safety concerns identified at this time; safety plan reviewed.",
        "Dx: Z59.0 homelessness, Z56.0 unemployment, F43.21 adjustment disorder.",
        "Case discussed at the interdisciplinary team meeting.",
        "ACE score 5 reported; trauma-informed approach used.",
        "Medicaid redetermination packet explained line by line.",
    ),
    K.TELEHEALTH: (
        "Modality: synchronous audio-video; originating site: patient home.",
        "Patient appears well on video, speaking full sentences, no acute distress.",
        "Modifier 95 appended; POS 10.",
        "PCL-5 score 41; PHQ-9 12; GAD-7 9.",
        "Sertraline increased to 100 mg daily; follow up in 4 weeks.",
        "Physical exam limited to inspection via video.",
        "Total time 32 minutes, more than half in counselling.",
        "Audio lag resolved by switching to phone.",
        "Advised to call 988 and press 1, or go to the nearest ED, if symptoms worsen.",
        "Home cuff readings over 14 days reviewed with pt: mean 136/84.",
        "Session not recorded.",
        "Teleretinal imaging: no diabetic retinopathy either eye.",
    ),
    K.DEVICE_CLINIC: (
        "Atrial pacing 34%, ventricular pacing 2%; no AT/AF episodes.",
        "Lead impedance RA 512 ohms, RV 640 ohms; thresholds 0.75 V @ 0.4 ms.",
        "Battery longevity estimated 7.5 years.",
        "CPAP use 6 h 12 min average, 87% of nights > 4 h; AHI 3.1/h; leak 18 L/min.",
        "Time in range 62%, below range 3%, GMI 7.6%.",
        "Basal rates unchanged; carb ratio 1:10, correction factor 1:45.",
        "Audiogram: moderate-to-severe sloping SNHL; WRS 68% R, 72% L.",
        "ICD: no shocks; VT zone 171 bpm, VF zone 222 bpm.",
        "MRI-conditional system; MRI mode programmed per protocol.",
        "SpO2 at rest 89% RA, 95% on 2 L via concentrator.",
        "Next remote check in 91 days; in-office interrogation in 12 months.",
        "Impedance stable; no device alerts.",
    ),
    K.ED: (
        "Triage ESI 2. GCS 14 (E3 V5 M6).",
        "FAST negative. Pelvis stable. C-spine cleared by NEXUS criteria.",
        "Ottawa ankle rules positive; X-ray ordered.",
        "Ondansetron 4 mg IV, normal saline 1 L bolus, morphine 4 mg IV.",
        "Troponin I < 0.01 ng/mL x2, 3 hours apart; HEART score 3.",
        "4 cm laceration R forearm closed with 5 simple interrupted 4-0 nylon sutures.",
        "ECG: sinus tachycardia 112, no ST changes.",
        "Disposition: discharged home with return precautions.",
        "Impression: blunt chest trauma, rib fractures R 5-7, no pneumothorax.",
        "Breath alcohol 0.00; urine drug screen pending.",
        "Snake bite, left hand: 20WBCT clotted; observe 24 h.",
        "Dr. on call informed. Room 7, cubicle B.",
        "Wells score 1.5; D-dimer 310 ng/mL FEU, PE unlikely.",
    ),
}

SEED = 660_417
"""The set's default seed."""

STYLE = NoteStyle(
    headers=HEADERS,
    bodies=BODIES,
    clinical=CLINICAL,
    fillers=sealed_values.fillers,
    new_patient=sealed_values.new_patient,
    pii_free_every=8,
)
"""The sealed set's note style (every eighth note PII-free)."""
