# Translations (issue 14): gettext catalogues of the `isoloir` domain, built with Babel.
#   make locale      extract the msgids into isoloir.pot, merge them into the fr/en .po
#                    files (commit those), compile the .mo catalogues
#   make locale-mo   compile the .mo catalogues from the committed .po files (a
#                    prerequisite of setup, so of test, demo, deploy and wheelhouse)
# The .mo files are build outputs (not committed): package-data ships them in the wheel.
LOCALE_DIR := agents/isoloir/locale
LOCALE_LANGS := fr en
LOCALE_POT := $(LOCALE_DIR)/isoloir.pot
LOCALE_MO := $(foreach l,$(LOCALE_LANGS),$(LOCALE_DIR)/$(l)/LC_MESSAGES/isoloir.mo)

.PHONY: locale locale-mo

$(LOCALE_DIR)/%/LC_MESSAGES/isoloir.mo: $(LOCALE_DIR)/%/LC_MESSAGES/isoloir.po $(VENV)/.installed
	$(BIN)/pybabel -q compile --domain isoloir --directory $(LOCALE_DIR) --locale $*

locale-mo: $(LOCALE_MO)

locale: $(VENV)/.installed
	@mkdir -p $(LOCALE_DIR)
	$(BIN)/pybabel -q extract --mapping-file babel.cfg --sort-output --add-location=file --no-wrap \
	  --project Isoloir --copyright-holder "Isoloir contributors" \
	  --msgid-bugs-address "isoloir@example.org" --output-file $(LOCALE_POT) agents/isoloir
	@for l in $(LOCALE_LANGS); do \
	  if [ -f $(LOCALE_DIR)/$$l/LC_MESSAGES/isoloir.po ]; then \
	    $(BIN)/pybabel -q update --domain isoloir --input-file $(LOCALE_POT) --output-dir $(LOCALE_DIR) \
	      --locale $$l --no-wrap --ignore-obsolete --no-fuzzy-matching || exit 1; \
	  else \
	    $(BIN)/pybabel -q init --domain isoloir --input-file $(LOCALE_POT) --output-dir $(LOCALE_DIR) \
	      --locale $$l --no-wrap || exit 1; \
	  fi; done
	$(MAKE) --no-print-directory locale-mo

setup: locale-mo
