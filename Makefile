# flowtutor: the two commands of the README are `make book` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install book test site-test student assignments lab bench lock clean

install: $(STAMP)

# Creates .venv if missing and installs the package with its book and test extras.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[book,test]"
	touch $(STAMP)

# Builds the website in full mode; -W turns warnings and failing cells into errors, --all re-executes every
# notebook, and check_executed.py fails on errors raised while displaying outputs (which the build lets through).
book: $(STAMP)
	FLOWTUTOR_PROGRESS=0 $(VENV)/bin/jupyter-book build . -W --keep-going --all
	$(PY) .ci/check_executed.py
	$(PY) .ci/check_site.py
	@echo "The book: $(abspath _build/html/index.html)"

# Unit tests, then every notebook executed by nbval in quick mode.
test: $(STAMP)
	FLOWTUTOR_QUICK=1 $(PY) -m pytest -q

# The built site in headless Chromium (Debian's package: apt-get install chromium), offline; after `make book`.
site-test: $(STAMP)
	$(PY) .ci/check_browser.py

# The student edition: the same book, every solution removed from the pages after it has executed (so the checks
# still show their results); in _build/student/_build/html. Check it: $(PY) .ci/check_browser.py _build/student/_build/html
student: $(STAMP)
	FLOWTUTOR_EDITION=student FLOWTUTOR_PROGRESS=0 $(VENV)/bin/jupyter-book build . --path-output _build/student -W --keep-going --all

# One nbgrader assignment per chapter, in the course directory _build/coursework (students' notebooks in release/);
# grade a submission with $(PY) coursework/grade.py NOTEBOOK.ipynb --student ID (book/instructors.md).
assignments: $(STAMP)
	$(PY) coursework/assignments.py

lab: $(STAMP)
	$(VENV)/bin/jupyter lab book/

# The benchmarks compare against reference libraries (the bench extra), installed here only.
bench: $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[bench]"
	$(PY) benchmarks/core.py
	$(PY) benchmarks/cnf.py
	$(PY) benchmarks/matching.py
	$(PY) benchmarks/jko.py
	$(PY) benchmarks/kac.py
	$(PY) benchmarks/guidance.py

lock: $(STAMP)
	{ head -n 2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^flowtutor' | sed 's/+cpu//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf _build $(VENV) *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
