"""Faces and people: the face store, the face index, clustering into people, analysis jobs."""
