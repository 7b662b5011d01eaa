# bash completion for cutpilot: verbs, each verb's flags, plan files, step ids and host names.
# The verbs and flags come from `cutpilot --help` and `cutpilot VERB --help`, so they follow the
# binary; step ids and hosts from `cutpilot plan --ids|--hosts PLAN` (PLAN on the command line or
# after --plan), else, for the control verbs, from the running cockpit (`cutpilot status --json`).
# Installed as share/bash-completion/completions/cutpilot.

_cutpilot_verbs() {
  "$1" --help 2>/dev/null | sed -n 's/^  cutpilot \([a-z][a-z-]*\).*/\1/p' | sort -u
}

_cutpilot_flags() {  # _cutpilot_flags CUTPILOT VERB
  "$1" "$2" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u
}

# The PLAN of the command line: the first argument ending in .toml, or the one after --plan.
_cutpilot_plan_of() {
  local i w
  for ((i = 2; i < ${#COMP_WORDS[@]}; i++)); do
    w=${COMP_WORDS[i]}
    [ "$i" = "$COMP_CWORD" ] && continue
    if [ "$w" = --plan ] && [ $((i + 1)) -lt ${#COMP_WORDS[@]} ]; then
      echo "${COMP_WORDS[i + 1]}"
      return
    fi
    case $w in --plan=*) echo "${w#--plan=}"; return ;; esac
    case $w in -*) ;; *.toml) [ -f "$w" ] && { echo "$w"; return; } ;; esac
  done
}

# The --state-dir DIR of the command line, as arguments for status.
_cutpilot_state_dir_of() {
  local i
  for ((i = 2; i < ${#COMP_WORDS[@]} - 1; i++)); do
    [ "${COMP_WORDS[i]}" = --state-dir ] && { echo "--state-dir ${COMP_WORDS[i + 1]}"; return; }
  done
}

_cutpilot_steps() {  # _cutpilot_steps CUTPILOT
  local plan
  plan=$(_cutpilot_plan_of)
  if [ -n "$plan" ]; then
    "$1" plan --ids "$plan" 2>/dev/null
  else
    # shellcheck disable=SC2046
    "$1" status --json $(_cutpilot_state_dir_of) 2>/dev/null |
      grep -o '"\(id\|step\)": *"[A-Za-z0-9_-]*"' | sed 's/.*"\([^"]*\)"$/\1/' | sort -u
  fi
}

_cutpilot_hosts() {  # _cutpilot_hosts CUTPILOT: the plan's hosts, else ~/.ssh/config's
  local plan
  plan=$(_cutpilot_plan_of)
  if [ -n "$plan" ]; then
    "$1" plan --hosts "$plan" 2>/dev/null
  elif [ -r ~/.ssh/config ]; then
    awk 'tolower($1) == "host" { for (i = 2; i <= NF; i++) if ($i !~ /[*?!]/) print $i }' ~/.ssh/config
  fi
}

_cutpilot() {
  local cur prev verb bin=${COMP_WORDS[0]}
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD - 1]}
  COMPREPLY=()
  if [ "$COMP_CWORD" = 1 ]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_cutpilot_verbs "$bin") --help --version" -- "$cur")
    return
  fi
  verb=${COMP_WORDS[1]}
  case $prev in
    --state-dir)
      mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
    --plan)
      mapfile -t COMPREPLY < <(compgen -f -X '!*.toml' -- "$cur"; compgen -d -- "$cur"); return ;;
    --on-failure)
      mapfile -t COMPREPLY < <(compgen -W "wait rollback exit" -- "$cur"); return ;;
    --approve)
      mapfile -t COMPREPLY < <(compgen -W "$(_cutpilot_steps "$bin")" -- "$cur"); return ;;
    --confirm)
      return ;;
  esac
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_cutpilot_flags "$bin" "$verb") --help" -- "$cur")
    return
  fi
  case $verb in
    approve | revoke | skip | retry)
      mapfile -t COMPREPLY < <(compgen -W "$(_cutpilot_steps "$bin")" -- "$cur") ;;
    trust)
      mapfile -t COMPREPLY < <(compgen -W "$(_cutpilot_hosts "$bin")" -- "$cur") ;;
    check | plan | hosts | run | status | runs | report)
      mapfile -t COMPREPLY < <(compgen -f -X '!*.toml' -- "$cur"; compgen -d -S / -- "$cur")
      compopt -o nospace 2>/dev/null
      [ ${#COMPREPLY[@]} = 1 ] && [[ ${COMPREPLY[0]} != */ ]] && compopt +o nospace 2>/dev/null ;;
  esac
}

complete -F _cutpilot cutpilot
