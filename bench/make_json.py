#!/usr/bin/env python3
"""Write the 4 KiB JSON request body of the `waf-post` bench scenario.

A citizen-service form as a department application would post it: 36 string fields (names, addresses,
identifiers, dates, free-text notes), padded to exactly --size bytes in the last note. Deterministic, so
every run posts the same bytes. The content is benign: the bench checks that both WAFs pass it.

    make_json.py OUT [--size 4096]
"""

import argparse
import json
import sys


FIELDS = [
    ("request_id", "REQ-2026-11-000417"),
    ("service_code", "kependudukan.akta-kelahiran"),
    ("submitted_at", "2026-11-23T08:15:42+07:00"),
    ("channel", "web-portal"),
    ("applicant_name", "Siti Rahmawati Nugroho"),
    ("applicant_nik", "3273014506880002"),
    ("applicant_birth_place", "Bandung"),
    ("applicant_birth_date", "1988-06-05"),
    ("applicant_gender", "perempuan"),
    ("applicant_religion", "Islam"),
    ("applicant_occupation", "Guru Sekolah Dasar"),
    ("applicant_email", "siti.rahmawati@example.co.id"),
    ("applicant_phone", "+62 812 2233 4455"),
    ("address_street", "Jalan Cihampelas No. 148, RT 03 RW 07"),
    ("address_village", "Cipaganti"),
    ("address_district", "Coblong"),
    ("address_city", "Kota Bandung"),
    ("address_province", "Jawa Barat"),
    ("address_postal_code", "40131"),
    ("child_name", "Arya Pratama Nugroho"),
    ("child_birth_date", "2026-10-30"),
    ("child_birth_time", "14:20"),
    ("child_birth_place", "RSUD Kota Bandung"),
    ("child_gender", "laki-laki"),
    ("father_name", "Budi Santoso Nugroho"),
    ("father_nik", "3273011203850004"),
    ("mother_name", "Siti Rahmawati Nugroho"),
    ("mother_nik", "3273014506880002"),
    ("witness_1_name", "Dewi Lestari"),
    ("witness_2_name", "Agus Salim Hidayat"),
    ("family_card_number", "3273012001090015"),
    ("attachment_birth_certificate", "uploads/2026/11/req-000417/surat-keterangan-lahir.pdf"),
    ("attachment_family_card", "uploads/2026/11/req-000417/kartu-keluarga.pdf"),
    ("delivery_preference", "ambil di kantor kelurahan"),
    ("notes_applicant", ""),  # filled below
    ("notes_officer", ""),    # padding, filled below
]

NOTE = ("Mohon akta kelahiran dapat diambil di kantor kelurahan pada hari kerja. Data orang tua sesuai "
        "dengan kartu keluarga terbaru yang diterbitkan tahun ini. Nomor telepon aktif pada jam kerja, "
        "dan saya bersedia dihubungi bila ada dokumen yang perlu dilengkapi. Terima kasih atas bantuannya. ")
FILLER = ("Berkas diterima lengkap dan sudah diperiksa oleh petugas loket pelayanan terpadu satu pintu. "
          "Verifikasi data kependudukan selesai tanpa catatan. ")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    doc = dict(FIELDS)
    doc["notes_applicant"] = NOTE.strip()
    doc["notes_officer"] = ""
    base = len(json.dumps(doc, ensure_ascii=True).encode())
    need = args.size - base
    if need < 0:
        print(f"the fields alone take {base} bytes, more than --size {args.size}", file=sys.stderr)
        return 1
    doc["notes_officer"] = (FILLER * (need // len(FILLER) + 1))[:need]
    data = json.dumps(doc, ensure_ascii=True).encode()
    assert len(data) == args.size, len(data)
    with open(args.out, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
