"""Plumbing every app uses: Job rows and the job runner, content-addressed storage, bulk writes, canonical JSON and
the errors a user can cause. It imports no other app of ours."""
