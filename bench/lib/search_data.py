#!/usr/bin/env python3
"""The search benchmark's data set (python3 standard library only). See bench/README.md.

Deterministic from a seed: Patient n and its Observations depend only on (seed, n), whatever the
load order or parallelism. The server assigns the ids; the pool files record them.

  scale 1: 10,000 Patients x 100 Observations = 1,000,000 Observations.

Every Patient has exactly OBS_PER_CODE Observations of each of the len(CODES) LOINC codes, so a
`subject=Patient/<id>&code=http://loinc.org|<code>` search has a known answer.

Run as a script for a dry look at the data: `search_data.py sample [SEED]`.
"""

import http.client
import json
import random
import sys
import threading
import time

import bench  # bench/lib/bench.py: the headers that authenticate (AUTH)

PATIENTS_AT_SCALE_1 = 10_000
OBS_PER_PATIENT = 100

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
MRN_SYSTEM = "http://bench.oxmed.example/mrn"

# (code, display, category, unit, low, high, decimals)
CODES = [
    ("8867-4", "Heart rate", "vital-signs", "/min", 48, 120, 0),
    ("9279-1", "Respiratory rate", "vital-signs", "/min", 10, 28, 0),
    ("8310-5", "Body temperature", "vital-signs", "Cel", 35.5, 39.5, 1),
    ("29463-7", "Body weight", "vital-signs", "kg", 3, 140, 1),
    ("8302-2", "Body height", "vital-signs", "cm", 50, 200, 1),
    ("39156-5", "Body mass index (BMI) [Ratio]", "vital-signs", "kg/m2", 14, 45, 1),
    ("8480-6", "Systolic blood pressure", "vital-signs", "mm[Hg]", 90, 190, 0),
    ("8462-4", "Diastolic blood pressure", "vital-signs", "mm[Hg]", 50, 120, 0),
    ("2708-6", "Oxygen saturation in Arterial blood", "vital-signs", "%", 85, 100, 0),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "vital-signs", "%", 85, 100, 0),
    ("2339-0", "Glucose [Mass/volume] in Blood", "laboratory", "mg/dL", 60, 250, 0),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "laboratory", "mg/dL", 120, 320, 0),
    ("2085-9", "HDL Cholesterol", "laboratory", "mg/dL", 25, 100, 0),
    ("13457-7", "LDL Cholesterol (calculated)", "laboratory", "mg/dL", 50, 220, 0),
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "laboratory", "mg/dL", 40, 400, 0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "laboratory", "%", 4.5, 12, 1),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "laboratory", "mg/dL", 0.4, 3.5, 2),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "laboratory", "g/dL", 8, 18, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "laboratory", "10*3/uL", 3, 15, 1),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "laboratory", "10*3/uL", 100, 450, 0),
]
OBS_PER_CODE = OBS_PER_PATIENT // len(CODES)
assert OBS_PER_CODE * len(CODES) == OBS_PER_PATIENT

FAMILIES = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark
Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams
Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker
Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper
Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James
Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster
Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher
Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno
West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall
Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb
Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason
Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren
Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne
Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight
Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry
Perkins Hoffman Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval
Guerrero George Chapman Rios Estrada Ortega Watkins Greene Nunez Wheeler Valdez Harper Burke
Larson Santiago Maldonado Morrison Franklin Carlson Austin Dominguez Carr Lawson Jacobs Obrien
Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey Williamson Gilbert Dean Sims Espinoza
Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller Wang Weber Welch Rojas Lucas Marquez
Fields Park Yang Little Banks Padilla Day Walsh Bowman Schultz Luna Fowler Mejia Davidson Acosta
Brewer May Holland Juarez Newman Pearson Curtis Cortez Douglas Schneider Joseph Barrett Navarro
Figueroa Keller Avila Wade Molina Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck
Lambert Miranda Byrd Craig Ayala Lowe Frazier Powers Neal Leonard Gregory Carrillo Sutton Fleming
Rhodes Shelton Schwartz Norris Jennings Watts Duran Walters Cohen McDaniel Moran Parks Steele
Vaughn Becker Holt Deleon Barker Terry Hale Leon Hail Benson Haynes Horton Miles Lyons Pham Graves
Bush Thornton Wolfe Warner Cabrera McKinney Mann Zimmerman Dawson Lara Fletcher Page McCarthy Love
Robles Cervantes Solis Erickson Reeves Chang Klein Salinas Fuentes Baldwin Daniel Simon Velasquez
Hardy Higgins Aguirre Lin Cummings Chandler Sharp Barber Bowen Ochoa Dennis Robbins Liu Ramsey
Francis Griffith Paul Blair Okafor Tanaka Rossi Kowalski Nakamura Yamamoto Suzuki Muller Novak
Dubois Lefebvre Moreau Fischer Weber Schulz Hoffmann Kruger Jansen Devries Bakker Visser Larsen
Nielsen Andersen Petersen Johansson Karlsson Nilsson Virtanen Korhonen Ivanov Petrov Popescu
Horvath Nagy Kovacs Papadopoulos Yilmaz Kaya Demir Sahin Cohen Levi Mizrahi Haddad Khalil Mansour
Okonkwo Mensah Adeyemi Abubakar Kamau Otieno Mwangi Banda Dlamini Nkosi Chowdhury Rahman Hossain
Sharma Gupta Kumar Reddy Iyer Nair Menon Das Bose Tan Lim Ng Goh Chua Wu Zhou Huang Zhao Sun Ma
""".split()
FAMILIES = list(dict.fromkeys(FAMILIES))  # order kept, duplicates dropped

GIVEN_FEMALE = """
Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Margaret
Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah Stephanie Rebecca
Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma Nicole Helen Samantha
Katherine Christine Debra Rachel Carolyn Janet Catherine Maria Heather Diane Ruth Julie Olivia
Joyce Virginia Victoria Kelly Lauren Christina Joan Evelyn Judith Megan Andrea Cheryl Hannah
Jacqueline Martha Gloria Teresa Ann Sara Madison Frances Kathryn Janice Jean Abigail Alice Judy
Sophia Grace Denise Amber Doris Marilyn Danielle Beverly Isabella Theresa Diana Natalie Brittany
Charlotte Marie Kayla Alexis Lori Amina Lucia Sofia Priya Aiko Fatima Ingrid Yuki Zara Leila
""".split()
GIVEN_MALE = """
James Robert John Michael David William Richard Joseph Thomas Charles Christopher Daniel Matthew
Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Edward
Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin
Samuel Gregory Alexander Frank Patrick Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry
Douglas Zachary Peter Kyle Ethan Walter Noah Jeremy Christian Keith Roger Terry Gerald Harold Sean
Austin Carl Arthur Lawrence Dylan Jesse Jordan Bryan Billy Joe Bruce Gabriel Logan Albert Willie
Alan Juan Wayne Elijah Randy Roy Vincent Ralph Eugene Russell Bobby Mason Philip Louis Kenji Mateo
Jonas Omar Ravi Hiroshi Lars Dmitri Kwame Tariq Luca Mehmet
""".split()


def scale_counts(scale):
    patients = max(1, round(PATIENTS_AT_SCALE_1 * float(scale)))
    return patients, patients * OBS_PER_PATIENT


def _family_weights():
    # Surnames are roughly Zipf-distributed: a few common ones, a long tail.
    return [1.0 / (rank + 8) for rank in range(len(FAMILIES))]


_WEIGHTS = _family_weights()


def patient(seed, n):
    rng = random.Random(f"{seed}:patient:{n}")
    gender = "female" if rng.random() < 0.51 else "male"
    givens = GIVEN_FEMALE if gender == "female" else GIVEN_MALE
    family = rng.choices(FAMILIES, _WEIGHTS)[0]
    given = [rng.choice(givens)]
    if rng.random() < 0.3:
        given.append(rng.choice(givens))
    birth = f"{rng.randint(1925, 2022):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": f"MRN-{seed}-{n:07d}"}],
        "active": True,
        "name": [{"use": "official", "family": family, "given": given}],
        "gender": gender,
        "birthDate": birth,
    }


def observations(seed, n, patient_id):
    """The OBS_PER_PATIENT Observations of Patient n, each code OBS_PER_CODE times."""
    rng = random.Random(f"{seed}:observations:{n}")
    codes = [c for c in CODES for _ in range(OBS_PER_CODE)]
    rng.shuffle(codes)
    out = []
    # effectiveDateTime spread over 2010..2024 (15 years).
    start = 1262304000  # 2010-01-01T00:00:00Z
    span = 15 * 365 * 86400
    for code, display, category, unit, low, high, decimals in codes:
        t = time.gmtime(start + rng.randrange(span))
        value = round(rng.uniform(low, high), decimals)
        if decimals == 0:
            value = int(value)
        out.append({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", t),
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        })
    return out


def name_prefix_counts(seed, patients):
    """{3-letter prefix of a family name present: Patients whose family or a given name starts
    with it (case-insensitive), which is what `Patient?name=<prefix>` should match}."""
    words_by_patient = []
    families = set()
    for n in range(patients):
        p = patient(seed, n)
        name = p["name"][0]
        families.add(name["family"][:3])
        words_by_patient.append({w.lower() for w in [name["family"], *name["given"]]})
    counts = {}
    for prefix in sorted(families):
        lp = prefix.lower()
        counts[prefix] = sum(1 for ws in words_by_patient if any(w.startswith(lp) for w in ws))
    return counts


# ---- loading -------------------------------------------------------------------------------------

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


class LoadError(Exception):
    pass


def _transaction(resources):
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for i, r in enumerate(resources)
        ],
    }


def _post_bundle(conn, prefix, resources):
    body = json.dumps(_transaction(resources), separators=(",", ":"))
    conn.request("POST", prefix + "/", body, {**HEADERS, **bench.AUTH})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise LoadError(f"transaction of {len(resources)} entries -> HTTP {r.status}: "
                        f"{data[:500].decode(errors='replace')}")
    bundle = json.loads(data)
    entries = bundle.get("entry", [])
    if bundle.get("type") != "transaction-response" or len(entries) != len(resources):
        raise LoadError(f"unexpected transaction response: type {bundle.get('type')!r}, "
                        f"{len(entries)} entries for {len(resources)}")
    ids = []
    for e, sent in zip(entries, resources):
        status = e.get("response", {}).get("status", "")
        res = e.get("resource") or {}
        rid = res.get("id")
        if not rid:
            loc = e.get("response", {}).get("location", "")
            parts = loc.split("/")
            rid = parts[1] if len(parts) >= 2 and parts[0] == sent["resourceType"] else None
        if not status.startswith("201") or not rid:
            raise LoadError(f"transaction entry not created: {json.dumps(e)[:300]}")
        ids.append(rid)
    return ids


def _run_parallel(host, port, jobs, concurrency, work, progress):
    """Runs work(conn, job) for every job on `concurrency` keep-alive connections."""
    lock = threading.Lock()
    it = iter(jobs)
    errors = []

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=600)
        try:
            while True:
                with lock:
                    if errors:
                        return
                    job = next(it, None)
                if job is None:
                    return
                done = work(conn, job)
                with lock:
                    progress(done)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            with lock:
                errors.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise LoadError(errors[0])


class Progress:
    def __init__(self, what, total, log, every=5.0):
        self.what, self.total, self.log, self.every = what, total, log, every
        self.done = 0
        self.t0 = time.monotonic()
        self.last = self.t0

    def __call__(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0
            self.log(f"{self.what}: {self.done:,}/{self.total:,} ({100 * self.done / self.total:.0f}%), "
                     f"{rate:,.0f}/s, {now - self.t0:.0f} s elapsed, ~{eta:.0f} s left")


def load(host, port, prefix, seed, scale, concurrency=4, patients_per_bundle=500,
         observations_per_bundle=1000, log=print):
    """Loads the data set; returns (patient ids in order, stats)."""
    n_patients, n_obs = scale_counts(scale)
    ids = [None] * n_patients
    t0 = time.monotonic()

    batches = [range(a, min(a + patients_per_bundle, n_patients))
               for a in range(0, n_patients, patients_per_bundle)]

    def load_patients(conn, batch):
        got = _post_bundle(conn, prefix, [patient(seed, n) for n in batch])
        for n, pid in zip(batch, got):
            ids[n] = pid
        return len(batch)

    _run_parallel(host, port, batches, concurrency, load_patients, Progress("Patients", n_patients, log))
    t_patients = time.monotonic() - t0

    per_bundle = max(1, observations_per_bundle // OBS_PER_PATIENT)  # whole Patients per bundle
    obs_batches = [range(a, min(a + per_bundle, n_patients)) for a in range(0, n_patients, per_bundle)]

    def load_observations(conn, batch):
        res = [o for n in batch for o in observations(seed, n, ids[n])]
        _post_bundle(conn, prefix, res)
        return len(res)

    t1 = time.monotonic()
    _run_parallel(host, port, obs_batches, concurrency, load_observations,
                  Progress("Observations", n_obs, log))
    t_obs = time.monotonic() - t1
    total = time.monotonic() - t0
    stats = {
        "patients": n_patients,
        "observations": n_obs,
        "patients_seconds": round(t_patients, 1),
        "observations_seconds": round(t_obs, 1),
        "load_seconds": round(total, 1),
        "resources_per_second": round((n_patients + n_obs) / total, 1),
        "concurrency": concurrency,
        "patients_per_bundle": patients_per_bundle,
        "observations_per_bundle": per_bundle * OBS_PER_PATIENT,
    }
    return ids, stats


def write_pool(pool_dir, seed, scale, ids):
    """The files the wrk scripts read, one value a line, and the expected answers for checks."""
    import os

    os.makedirs(pool_dir, exist_ok=True)
    n_patients, _ = scale_counts(scale)
    with open(f"{pool_dir}/patients.ids", "w") as f:
        f.write("\n".join(ids) + "\n")
    with open(f"{pool_dir}/codes.txt", "w") as f:
        f.write("\n".join(c[0] for c in CODES) + "\n")
    counts = name_prefix_counts(seed, n_patients)
    with open(f"{pool_dir}/name-prefixes.txt", "w") as f:
        f.write("\n".join(counts) + "\n")
    with open(f"{pool_dir}/name-prefix-counts.json", "w") as f:
        json.dump(counts, f, indent=0)


def read_lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "sample":
        s = int(sys.argv[2]) if len(sys.argv) > 2 else 42
        print(json.dumps(patient(s, 0), indent=1))
        print(json.dumps(observations(s, 0, "example")[0], indent=1))
        c = name_prefix_counts(s, PATIENTS_AT_SCALE_1)
        print(f"{len(FAMILIES)} family names, {len(GIVEN_FEMALE) + len(GIVEN_MALE)} given names, "
              f"{len(c)} 3-letter family prefixes; Patients matching a prefix at scale 1: "
              f"min {min(c.values())}, median {sorted(c.values())[len(c) // 2]}, max {max(c.values())}")
        print(f"Observation JSON: ~{len(json.dumps(observations(s, 0, 'x' * 36)[0]))} bytes")
    else:
        sys.exit(__doc__)
