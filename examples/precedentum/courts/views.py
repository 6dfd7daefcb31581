"""A small JSON API over courts, judges and cases, and the single-page frontend's shell."""

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from courts.models import Case, Court, Judge

PAGE_SIZE = 50


def _judge(judge: Judge) -> dict:
    return {"id": judge.id, "name": judge.name, "role": judge.role, "division": judge.division,
            "court": judge.court.slug}


def _case(case: Case) -> dict:
    return {"number": case.number, "title": case.title, "court": case.court.slug, "judge": case.judge_id,
            "filed_on": case.filed_on.isoformat(), "nature_of_suit": case.nature_of_suit, "status": case.status}


@require_GET
def courts(request):
    return JsonResponse({"results": list(Court.objects.values("slug", "name", "circuit"))})


@require_GET
def judges(request):
    court = request.GET.get("court", "")
    # The roster changes a few times a year: cache it (the Redis round trip is cheaper than the query).
    data = cache.get_or_set(f"judges:{court}", lambda: [
        _judge(j) for j in Judge.objects.select_related("court").filter(**({"court__slug": court} if court else {}))
    ], 60)
    return JsonResponse({"results": data})


@require_GET
def judge(request, judge_id: int):
    found = get_object_or_404(Judge.objects.select_related("court"), pk=judge_id)
    recent = Case.objects.select_related("court").filter(judge=found)[:10]
    return JsonResponse({**_judge(found), "recent_cases": [_case(c) for c in recent]})


@require_GET
def cases(request):
    queryset = Case.objects.select_related("court")
    if judge_id := request.GET.get("judge"):
        queryset = queryset.filter(judge_id=judge_id)
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    return JsonResponse({"count": page.paginator.count, "page": page.number,
                         "results": [_case(c) for c in page.object_list]})


@require_GET
def case(request, number: str):
    return JsonResponse(_case(get_object_or_404(Case.objects.select_related("court"), number=number)))


def spa(request):
    """Every frontend route gets the app's index.html; the browser router takes it from there."""
    index = settings.BASE_DIR / "frontend" / "dist" / "index.html"
    if not index.exists():
        raise Http404("frontend not built")
    return HttpResponse(index.read_text(), content_type="text/html")
