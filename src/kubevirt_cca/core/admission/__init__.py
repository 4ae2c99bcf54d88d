"""Admission: what kubevirt-cca decides about a VMI, a template or a migration.

Pure logic, values in and values out, shared by the HTTPS webhook and the offline ``validate``
command::

    reviews.py   AdmissionReview wire types, parsing, build_response
    gates.py     feature gates of the KubeVirt CR, and the cluster view admission reads
    sidecar_entry.py  our entry in hooks.kubevirt.io/hookSidecars and the resolved annotation
    patches.py   RFC 6902 JSON patch operations
    mutate.py    what the mutating webhook adds to a CCA VMI
    validate.py  what the validating webhooks refuse
    admit.py     AdmissionReview request -> response, per endpoint
"""
