import datetime
import json

from django.core.management.base import BaseCommand, CommandError

from merchandising.mining import SCORES
from merchandising.services import mining_backtest


class Command(BaseCommand):
    help = (
        "Backtest the mining configuration: mine the orders before --cutoff with the stored settings, test on the "
        "orders from the cutoff on; print hit@10 and recall@10 next to the bestsellers and co-count baselines."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cutoff", required=True, help="YYYY-MM-DD: train before it, test from it on")
        parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
        parser.add_argument("--score", choices=sorted(SCORES), help="the ranking to test (default: the stored one)")
        parser.add_argument("--min-count", type=int)
        parser.add_argument("--min-confidence", type=float)
        parser.add_argument("--min-lift", type=float)
        parser.add_argument("--top-k", type=int)

    def handle(self, *args, **options):
        try:
            cutoff = datetime.date.fromisoformat(options["cutoff"])
        except ValueError:
            raise CommandError(f"--cutoff {options['cutoff']!r} is not a date (YYYY-MM-DD)") from None
        overrides = {
            name: options[name]
            for name in ("score", "min_count", "min_confidence", "min_lift", "top_k")
            if options[name] is not None
        }
        try:
            result = mining_backtest(cutoff=cutoff, overrides=overrides)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        context = result.pop("context")
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        rows = [
            (f"configured ({context['parameters']['score']})", result["hit_at_10"], result["recall_at_10"]),
            *((name, values["hit_at_10"], values["recall_at_10"]) for name, values in result["baselines"].items()),
        ]
        width = max(28, *(len(name) for name, _hit, _recall in rows))
        lines = [
            f"Backtest at {context['cutoff']}: {context['train_orders']} orders before, "
            f"{context['test_orders']} from it on, {result['cases']} cases",
            f"{'ranking':<{width}} {'hit@10':>8} {'recall@10':>10}",
            *(f"{name:<{width}} {hit:>8.4f} {recall:>10.4f}" for name, hit, recall in rows),
        ]
        self.stdout.write("\n".join(lines))
