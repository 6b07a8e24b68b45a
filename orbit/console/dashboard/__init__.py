"""The operators' dashboard under /dashboard/: overview, runs, run detail, workers, pipelines.

Pages are server-rendered (charts are SVG drawn by templates) and refresh their live parts
with htmx polling; every page needs a staff login and the matching view permission, every
action the matching change permission.
"""
